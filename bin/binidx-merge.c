/* binidx-merge: concatenate binidx datasets into one. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "binidx.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: binidx-merge [-f] -o OUT IN1 [IN2...]\n"
        "Concatenate binidx datasets (each validated first) into OUT.bin + OUT.idx, documents\n"
        "in argument order: the same bytes as tokenizing the concatenated inputs at once.\n"
        "The result is uint16 unless some id exceeds 65535 (then int32).\n"
        "\n"
        "  -o, --output PREFIX  the merged dataset (required)\n"
        "  -f, --force          replace an existing OUT.bin / OUT.idx\n"
        "  -q, --quiet          no summary on stderr\n"
        "  -h, --help           show this help\n"
        "  -V, --version        show the version\n"
        "\n"
        "Exit status: 0 written, 1 invalid input or write error (nothing written), 2 usage.\n");
}

int main(int argc, char **argv)
{
    tool_init("binidx-merge");
    static const struct option opts[] = {
        { "output", required_argument, 0, 'o' }, { "force", no_argument, 0, 'f' },
        { "quiet", no_argument, 0, 'q' },        { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },      { 0, 0, 0, 0 },
    };
    const char *out = NULL;
    int force = 0, quiet = 0, c;
    while ((c = getopt_long(argc, argv, "o:fqhV", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'f': force = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: usage(stderr); return 2;
        }
    }
    if (!out) return usage_error("missing -o OUT");
    if (optind >= argc) return usage_error("missing the datasets to merge");

    Error e;
    if (binidx_prefix_check(out, &e)) return report(&e);
    int n = argc - optind;
    BinidxDataset *ds = calloc((size_t)n, sizeof *ds);
    if (!ds) { tool_warn("out of memory"); return 1; }
    /* Validate every input before creating anything. */
    for (int i = 0; i < n; i++)
        if (binidx_open(argv[optind + i], &ds[i], &e)) {
            for (int k = 0; k < i; k++) binidx_close(&ds[k]);
            free(ds);
            return report(&e);
        }
    char *made_dirs;   /* removed again if the run fails */
    int rc = make_parent_dirs(out, &made_dirs, &e);
    BinidxWriter *w = rc ? NULL : binidx_writer_open(out, force, &e);
    rc = w ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++) rc = binidx_writer_append(w, &ds[i], &e);
    unsigned long long docs = 0, toks = 0;
    const char *dtype = "";
    if (rc == 0) {
        docs = binidx_writer_documents(w);
        toks = binidx_writer_tokens(w);
        dtype = binidx_dtype_name(binidx_writer_dtype(w));
        rc = binidx_writer_commit(w, &e);
    } else if (w) {
        binidx_writer_abort(w);
    }
    for (int i = 0; i < n; i++) binidx_close(&ds[i]);
    free(ds);
    if (rc) {
        remove_made_dirs(out, made_dirs);
        return report(&e);
    }
    free(made_dirs);
    if (!quiet) {
        char *p = binidx_prefix(out);
        tool_warn("%s.bin/idx: %d datasets, %llu documents, %llu tokens (%s)", p ? p : out, n, docs, toks, dtype);
        free(p);
    }
    return 0;
}
