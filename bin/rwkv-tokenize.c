/* rwkv-tokenize: JSONL text -> RWKV World token stream (and back, for inspection). */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer.h"
#include "tokpipe.h"
#include "util.h"
#include "vocab.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: rwkv-tokenize [OPTION]... [FILE]...\n"
        "       rwkv-tokenize --decode [FILE]... | ID...\n"
        "Tokenize the \"text\" field of each JSON line (plain or zstd; no FILE or '-' = stdin)\n"
        "with the RWKV World vocabulary, and write a binary token stream for binidx-write.\n"
        "Each document is followed by token 0.  Blank lines are skipped.\n"
        "\n"
        "  -f, --field NAME   tokenize string field NAME (default \"text\")\n"
        "      --vocab FILE   vocabulary file (default: the installed %s)\n"
        "      --no-eod       do not append token 0 to each document\n"
        "      --skip-bad     skip bad lines (count them on stderr) instead of stopping\n"
        "  -j, --threads N    tokenize with N threads; the output order stays the same\n"
        "  -t, --text         write ids as text: one document per line, space separated\n"
        "  -d, --decode       turn a token stream (binary or --text form) or the IDs\n"
        "                     given as arguments back into text, one document per line\n"
        "  -h, --help         show this help\n"
        "  -V, --version      show the version\n"
        "\n"
        "Exit status: 0 success, 1 bad input or failure, 2 usage.\n", DEFAULT_VOCAB);
}

/* --skip-bad: the first few skipped lines are named, the rest only counted */
static void on_bad(void *ctx, const char *file, uint64_t line, const char *msg, uint64_t nth_bad)
{
    (void)ctx;
    if (nth_bad <= 10) tool_warn("%s:%llu: %s (skipped)", file, (unsigned long long)line, msg);
}

static void on_progress(void *ctx, const TokpipeCounts *c)
{
    (void)ctx;
    fprintf(stderr, "\r%s: %llu documents, %.1f MB", tool_name, (unsigned long long)c->docs, c->bytes / 1e6);
}

int main(int argc, char **argv)
{
    tool_init("rwkv-tokenize");
    static const struct option opts[] = {
        { "field", required_argument, 0, 'f' }, { "vocab", required_argument, 0, 'v' },
        { "no-eod", no_argument, 0, 'E' },      { "skip-bad", no_argument, 0, 'S' },
        { "threads", required_argument, 0, 'j' }, { "text", no_argument, 0, 't' },
        { "decode", no_argument, 0, 'd' },      { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },     { 0, 0, 0, 0 },
    };
    TokpipeOptions o = { .field = "text", .field_len = 4, .eod = 1, .threads = 1, .on_bad = on_bad };
    const char *vocab_path = NULL;
    int decode = 0, c;
    uint64_t u;
    while ((c = getopt_long(argc, argv, "f:j:tdhV", opts, NULL)) != -1) {
        switch (c) {
        case 'f': o.field = optarg; o.field_len = strlen(optarg); break;
        case 'v': vocab_path = optarg; break;
        case 'E': o.eod = 0; break;
        case 'S': o.skip_bad = 1; break;
        case 'j':
            if (parse_u64(optarg, &u) || u < 1 || u > 1024) return bad_option("threads", optarg, "1..1024");
            o.threads = (int)u;
            break;
        case 't': o.text = 1; break;
        case 'd': decode = 1; break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: usage(stderr); return 2;
        }
    }
    if (!decode && !o.text && isatty(STDOUT_FILENO)) {
        return usage_error("refusing to write a binary token stream to a terminal (redirect it, or use --text)");
    }
    Error e;
    Vocab v;
    if (vocab_load_default(&v, vocab_path, &e)) return report(&e);
    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    TokpipeCounts cnt = { 0 };
    double t0 = now_seconds();
    if (progress_wanted()) o.on_progress = on_progress;
    int rc;
    if (decode) rc = tokpipe_decode(argv + optind, argc - optind, &v, stdout, &e);
    else if (!(o.tok = tokenizer_new(&v, &e))) rc = -1;
    else {
        rc = tokpipe_encode(argv + optind, argc - optind, &o, stdout, &cnt, &e);
        if (progress_wanted()) fputc('\n', stderr);
        if (!rc && cnt.bad) tool_warn("skipped %llu bad line%s", (unsigned long long)cnt.bad, cnt.bad == 1 ? "" : "s");
        if (!rc && progress_wanted())
            fprintf(stderr, "%s: %llu documents, %llu tokens, %.1f MB/s\n", tool_name, (unsigned long long)cnt.docs,
                    (unsigned long long)cnt.tokens, cnt.bytes / 1e6 / (now_seconds() - t0 + 1e-9));
    }
    tokenizer_free((Tokenizer *)o.tok);
    vocab_free(&v);
    if (rc) { report(&e); fflush(stdout); return 1; }
    return close_stdout();
}
