/* binidx-info: validate and describe binidx datasets. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "binidx.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: binidx-info [--check] [--vocab-size N] [--allow-no-eod] PREFIX...\n"
        "Validate each binidx dataset (PREFIX.idx against PREFIX.bin: header, sizes,\n"
        "pointers, document index, .bin length; then every token) and describe it:\n"
        "documents, tokens, dtype, max id, XXH3-64 of both files.\n"
        "\n"
        "  -c, --check          print nothing; the exit status says whether all are valid\n"
        "      --vocab-size N   also require every token id < N\n"
        "      --allow-no-eod   do not require each document to end with token 0\n"
        "  -h, --help           show this help\n"
        "  -V, --version        show the version\n"
        "\n"
        "Exit status: 0 all valid, 1 some dataset invalid, 2 usage.\n");
}

/* Fail when the token-level rules do not hold. */
static int check_tokens(const BinidxDataset *ds, const BinidxStats *st, uint64_t vocab, int allow_no_eod,
                        Error *e)
{
    if (st->negative_ids)
        return fail(e, "%s: %llu negative token ids", ds->bin_path, (unsigned long long)st->negative_ids);
    if (vocab && ds->token_count && st->max_id >= vocab)
        return fail(e, "%s: token id %llu is outside the vocabulary (--vocab-size %llu)", ds->bin_path,
                    (unsigned long long)st->max_id, (unsigned long long)vocab);
    if (!allow_no_eod && st->without_eod)
        return fail(e, "%s: %llu of %llu documents do not end with token 0 (use --allow-no-eod for "
                       "data without separators)", ds->bin_path, (unsigned long long)st->without_eod,
                    (unsigned long long)ds->index.sequences);
    return 0;
}

int main(int argc, char **argv)
{
    tool_init("binidx-info");
    static const struct option opts[] = {
        { "check", no_argument, 0, 'c' },       { "vocab-size", required_argument, 0, 'v' },
        { "allow-no-eod", no_argument, 0, 'E' }, { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },     { 0, 0, 0, 0 },
    };
    int check = 0, allow_no_eod = 0, c;
    uint64_t vocab = 0;
    while ((c = getopt_long(argc, argv, "chV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': check = 1; break;
        case 'v':
            if (parse_u64(optarg, &vocab) || vocab == 0) return bad_option("vocab-size", optarg, "a positive integer");
            break;
        case 'E': allow_no_eod = 1; break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) return usage_error("missing PREFIX");

    int status = 0;
    for (int i = optind; i < argc; i++) {
        Error e;
        BinidxDataset ds;
        BinidxStats st;
        if (binidx_open(argv[i], &ds, &e)) { report(&e); status = 1; continue; }
        if (binidx_scan(&ds, &st, &e) || check_tokens(&ds, &st, vocab, allow_no_eod, &e)) {
            report(&e);
            status = 1;
        } else if (!check) {
            char *prefix = binidx_prefix(argv[i]);
            if (i > optind) putchar('\n');
            printf("prefix: %s\n", prefix ? prefix : argv[i]);
            printf("documents: %llu\n", (unsigned long long)ds.documents);
            if (ds.index.sequences != ds.documents)
                printf("sequences: %llu\n", (unsigned long long)ds.index.sequences);
            printf("tokens: %llu\n", (unsigned long long)ds.token_count);
            printf("dtype: %s (code %d)\n", binidx_dtype_name(ds.index.dtype), ds.index.dtype);
            printf("max_id: %llu\n", (unsigned long long)st.max_id);
            printf("without_eod: %llu\n", (unsigned long long)st.without_eod);
            printf("bin_bytes: %zu\n", ds.bin_len);
            printf("idx_bytes: %zu\n", ds.idx_len);
            printf("bin_xxh3_64: %016llx\n", (unsigned long long)st.bin_xxh3);
            printf("idx_xxh3_64: %016llx\n", (unsigned long long)st.idx_xxh3);
            free(prefix);
        }
        binidx_close(&ds);
    }
    if (close_stdout()) return 1;
    return status;
}
