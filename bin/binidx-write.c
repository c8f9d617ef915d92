/* binidx-write: a token stream (rwkv-tokenize's output) on stdin -> PREFIX.bin + PREFIX.idx. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binidx.h"
#include "tokstream.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: binidx-write [-f] [--allow-no-eod] PREFIX [STREAM]\n"
        "Write the token stream STREAM (default: stdin, as rwkv-tokenize writes it) as the\n"
        "Megatron binidx dataset PREFIX.bin + PREFIX.idx, byte-identical to make_data.py.\n"
        "uint16 tokens, or int32 when an id exceeds 65535.  Nothing is written unless the\n"
        "stream is complete (ends with its closing record).\n"
        "\n"
        "  -f, --force         replace an existing PREFIX.bin / PREFIX.idx\n"
        "      --allow-no-eod  accept documents that do not end with token 0\n"
        "  -q, --quiet         no summary on stderr\n"
        "  -h, --help          show this help\n"
        "  -V, --version       show the version\n"
        "\n"
        "Exit status: 0 written, 1 bad or incomplete stream or write error, 2 usage.\n");
}

int main(int argc, char **argv)
{
    tool_init("binidx-write");
    static const struct option opts[] = {
        { "force", no_argument, 0, 'f' },      { "allow-no-eod", no_argument, 0, 'E' },
        { "quiet", no_argument, 0, 'q' },      { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },    { 0, 0, 0, 0 },
    };
    int force = 0, allow_no_eod = 0, quiet = 0, c;
    while ((c = getopt_long(argc, argv, "fqhV", opts, NULL)) != -1) {
        switch (c) {
        case 'f': force = 1; break;
        case 'E': allow_no_eod = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind < 1) return usage_error("missing PREFIX");
    if (argc - optind > 2) return usage_error("too many arguments (want PREFIX [STREAM])");
    const char *prefix = argv[optind];
    const char *stream = argc - optind == 2 ? argv[optind + 1] : "-";

    Error e;
    if (strcmp(stream, "-") == 0 && isatty(0))
        return usage_error("standard input is a terminal; pipe a token stream in "
                           "(e.g. rwkv-tokenize FILE | binidx-write %s)", prefix);
    if (binidx_prefix_check(prefix, &e)) return report(&e);
    FILE *in = stdin;
    const char *in_name = "<stdin>";
    if (strcmp(stream, "-") != 0) {
        in_name = stream;
        if (!(in = fopen(stream, "rb"))) { tool_warn("%s: cannot open: %m", stream); return 1; }
    }
    char *made_dirs;   /* removed again if the run fails */
    if (make_parent_dirs(prefix, &made_dirs, &e)) return report(&e);
    BinidxWriter *w = binidx_writer_open(prefix, force, &e);
    TokReader *r = w && binidx_writer_set_source(w, in_name, &e) == 0 ? tokr_open(in, in_name, &e) : NULL;
    if (!r) {
        binidx_writer_abort(w);
        remove_made_dirs(prefix, made_dirs);
        return report(&e);
    }

    int progress = progress_wanted(), shown = 0, rc;
    double last = now_seconds();
    const uint32_t *ids;
    size_t n;
    while ((rc = tokr_next(r, &ids, &n, &e)) == 1) {
        if (!allow_no_eod && (n == 0 || ids[n - 1] != 0)) {
            rc = fail(&e, "%s: document %llu does not end with token 0 (the end-of-document "
                          "separator); use --allow-no-eod to accept it", in_name,
                      (unsigned long long)tokr_documents(r));
            break;
        }
        if (binidx_writer_add(w, ids, n, &e)) { rc = -1; break; }
        if (progress && (tokr_documents(r) & 1023) == 0 && now_seconds() - last > 0.5) {
            last = now_seconds();
            shown = 1;
            fprintf(stderr, "\rbinidx-write: %llu documents, %llu tokens",
                    (unsigned long long)tokr_documents(r), (unsigned long long)tokr_tokens(r));
        }
    }
    if (shown) fputc('\n', stderr);
    if (rc != 0) {
        binidx_writer_abort(w);
        tokr_free(r);
        remove_made_dirs(prefix, made_dirs);
        return report(&e);
    }
    unsigned long long docs = binidx_writer_documents(w), toks = binidx_writer_tokens(w);
    const char *dtype = binidx_dtype_name(binidx_writer_dtype(w));
    tokr_free(r);
    if (in != stdin) fclose(in);
    if (binidx_writer_commit(w, &e)) {
        remove_made_dirs(prefix, made_dirs);
        return report(&e);
    }
    free(made_dirs);
    if (!quiet) {
        char *p = binidx_prefix(prefix);
        tool_warn("%s.bin/idx: %llu documents, %llu tokens (%s)", p ? p : prefix, docs, toks, dtype);
        free(p);
    }
    return 0;
}
