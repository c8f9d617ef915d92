/* magic-prime: --my_exit_tokens / --magic_prime / --ctx_len for a dataset or a token count. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "binidx.h"
#include "magic.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: magic-prime -c CTX_LEN PREFIX\n"
        "       magic-prime -c CTX_LEN -t TOKENS\n"
        "Print the training flags for a binidx dataset (validated: PREFIX.idx against\n"
        "PREFIX.bin) or a token count.  The last line of output is exactly\n"
        "  --my_exit_tokens N --magic_prime P --ctx_len C\n"
        "where P is the largest prime with P %% 3 == 2 and P <= N / C - 1 (as make_data.py).\n"
        "\n"
        "  -c, --ctx-len N   context length (required)\n"
        "  -t, --tokens N    use this token count instead of reading a dataset\n"
        "  -h, --help        show this help\n"
        "  -V, --version     show the version\n"
        "\n"
        "Exit status: 0 ok, 1 invalid dataset or fewer than 3 x CTX_LEN tokens, 2 usage.\n");
}

int main(int argc, char **argv)
{
    tool_init("magic-prime");
    static const struct option opts[] = {
        { "ctx-len", required_argument, 0, 'c' }, { "ctx_len", required_argument, 0, 'c' },
        { "tokens", required_argument, 0, 't' },  { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },       { 0, 0, 0, 0 },
    };
    uint64_t ctx = 0, tokens = 0;
    int have_ctx = 0, have_tokens = 0, c;
    while ((c = getopt_long(argc, argv, "c:t:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (parse_u64(optarg, &ctx) || ctx == 0) return bad_option("ctx-len", optarg, "a positive integer");
            have_ctx = 1;
            break;
        case 't':
            if (parse_u64(optarg, &tokens)) return bad_option("tokens", optarg, "a non-negative integer");
            have_tokens = 1;
            break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: return usage_error("unknown option or missing value (see above)");
        }
    }
    int nargs = argc - optind;
    if (!have_ctx) return usage_error("-c CTX_LEN is required");
    if (have_tokens ? nargs != 0 : nargs != 1)
        return usage_error(have_tokens ? "-t TOKENS takes no PREFIX" : "one PREFIX (or -t TOKENS) is required");

    Error e;
    if (!have_tokens) {
        BinidxDataset ds;
        if (binidx_open(argv[optind], &ds, &e)) return report(&e);
        tokens = ds.token_count;
        char *prefix = binidx_prefix(argv[optind]);
        printf("### %s.bin/idx has %llu tokens, %llu items. Dtype %s\n", prefix ? prefix : argv[optind],
               (unsigned long long)tokens, (unsigned long long)ds.documents,
               binidx_dtype_name(ds.index.dtype));
        free(prefix);
        binidx_close(&ds);
    }
    uint64_t prime;
    if (magic_prime(tokens, ctx, &prime, &e)) { close_stdout(); return report(&e); }
    printf("### magic_prime = %llu (for ctxlen %llu)\n", (unsigned long long)prime, (unsigned long long)ctx);
    printf("--my_exit_tokens %llu --magic_prime %llu --ctx_len %llu\n",
           (unsigned long long)magic_exit_tokens(tokens), (unsigned long long)prime,
           (unsigned long long)ctx);
    return close_stdout();
}
