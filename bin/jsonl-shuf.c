/* jsonl-shuf: write N shuffled copies of the non-blank lines of the input. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "extshuf.h"
#include "input.h"
#include "shuffle.h"
#include "utf8.h"
#include "util.h"

#define DEFAULT_MEMORY ((uint64_t)1 << 30)

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: jsonl-shuf [OPTION]... [FILE]...\n"
        "Write N shuffled copies of the non-blank lines of FILEs (plain or zstd;\n"
        "none or '-' reads standard input), each line followed by a newline.\n"
        "\n"
        "  -n, --copies N          copies, each an independent shuffle (default 1;\n"
        "                          0 reads and checks the input, writes nothing)\n"
        "  -s, --seed S            integer seed; with it the order is Python's\n"
        "                          random.seed(S) + random.shuffle, copy after copy\n"
        "  -m, --memory BYTES      memory budget, suffixes K M G T (default 1G);\n"
        "                          larger inputs are shuffled through temporary files\n"
        "  -T, --temporary-directory DIR\n"
        "                          temporary files go in DIR (default $TMPDIR or /tmp)\n"
        "  -o, --output FILE       write FILE atomically instead of standard output\n"
        "      --strip             remove leading and trailing whitespace from lines\n"
        "                          (Python's str.strip(), as make_data.py does)\n"
        "  -v, --verbose           report lines, bytes and the shuffle used on stderr\n"
        "  -h, --help              show this help and exit\n"
        "  -V, --version           show the version and exit\n"
        "\n"
        "Without --seed a seed is drawn from the OS and printed on standard error.\n");
}

int main(int argc, char **argv)
{
    tool_init("jsonl-shuf");
    static const struct option opts[] = {
        { "copies", required_argument, 0, 'n' },
        { "seed", required_argument, 0, 's' },
        { "memory", required_argument, 0, 'm' },
        { "temporary-directory", required_argument, 0, 'T' },
        { "output", required_argument, 0, 'o' },
        { "verbose", no_argument, 0, 'v' },
        { "strip", no_argument, 0, 'S' },
        { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },
        { 0, 0, 0, 0 },
    };
    uint64_t copies = 1, memory = DEFAULT_MEMORY;
    const char *seed_text = NULL, *tmpdir = NULL, *output = NULL;
    int c, verbose = progress_wanted(), strip = 0;
    while ((c = getopt_long(argc, argv, "n:s:m:T:o:vhV", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            /* 0 is accepted (writes nothing) so scripts can compute N without a special case */
            if (parse_u64(optarg, &copies)) return bad_option("copies", optarg, "N >= 0");
            break;
        case 's': seed_text = optarg; break;
        case 'm':
            if (parse_size(optarg, &memory) || memory == 0)
                return bad_option("memory", optarg, "BYTES > 0 with an optional K, M, G or T suffix");
            break;
        case 'T': tmpdir = optarg; break;
        case 'o': output = optarg; break;
        case 'v': verbose = 1; break;
        case 'S': strip = 1; break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: usage(stderr); return 2;
        }
    }

    Error e;
    Mt19937 rng;
    if (seed_text) {
        if (mt_seed_decimal(&rng, seed_text, &e)) return bad_option("seed", seed_text, "a decimal integer");
    } else {
        uint64_t seed;
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
            tool_warn("cannot draw a seed from the OS; give --seed");
            return 1;
        }
        mt_seed_u64(&rng, seed);
        tool_warn("seed %" PRIu64, seed);   /* so the run can be repeated */
    }

    ExtShuf *ls = extshuf_new(memory, tmpdir, &e);
    if (!ls) return report(&e);
    int nfiles = argc - optind;
    for (int i = 0; i < (nfiles ? nfiles : 1); i++) {
        const char *path = nfiles ? argv[optind + i] : "-";
        Input *in = input_open(path, &e);
        if (!in) goto fail;
        char *line;
        size_t len;
        int r;
        while ((r = input_getline(in, &line, &len, &e)) > 0) {
            const char *text = line;
            if (strip) py_strip(&text, &len);
            else if (py_is_blank(line, len)) len = 0;
            if (len && extshuf_add(ls, text, len, &e)) { r = -1; break; }
        }
        input_close(in);
        if (r < 0) goto fail;
    }
    if (verbose)
        tool_warn("%" PRIu64 " lines, %" PRIu64 " bytes, shuffled %s", extshuf_count(ls),
               extshuf_bytes(ls), extshuf_external(ls) ? "through temporary files" : "in memory");

    AtomicFile af = { 0 };
    FILE *out = stdout;
    if (output) {
        if (atomic_open(&af, output, 1, &e)) goto fail;
        out = af.fp;
    }
    setvbuf(out, NULL, _IOFBF, 1 << 20);
    if (extshuf_write(ls, &rng, copies, out, output ? output : "<stdout>", &e)) {
        if (output) atomic_abort(&af);
        goto fail;
    }
    extshuf_free(ls);
    if (output) return atomic_commit(&af, &e) ? report(&e) : 0;
    return close_stdout();
fail:
    extshuf_free(ls);
    return report(&e);
}
