/* magic.c: magic_prime and its checks (magic.h). */
#include "magic.h"

#include <stdio.h>

static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m)
{
    return (uint64_t)((unsigned __int128)a * b % m);
}

static uint64_t powmod(uint64_t base, uint64_t exp, uint64_t m)
{
    uint64_t r = 1;
    base %= m;
    while (exp) {
        if (exp & 1) r = mulmod(r, base, m);
        base = mulmod(base, base, m);
        exp >>= 1;
    }
    return r;
}

int is_prime(uint64_t n)
{
    static const uint64_t small[] = { 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37 };
    if (n < 2) return 0;
    for (int i = 0; i < 12; i++) {
        if (n == small[i]) return 1;
        if (n % small[i] == 0) return 0;
    }
    /* These 12 bases decide primality exactly for all n < 3.3e24 > 2^64. */
    uint64_t d = n - 1;
    int s = 0;
    while (!(d & 1)) { d >>= 1; s++; }
    for (int i = 0; i < 12; i++) {
        uint64_t x = powmod(small[i], d, n);
        if (x == 1 || x == n - 1) continue;
        int composite = 1;
        for (int r = 1; r < s; r++) {
            x = mulmod(x, x, n);
            if (x == n - 1) { composite = 0; break; }
        }
        if (composite) return 0;
    }
    return 1;
}

int magic_prime(uint64_t tokens, uint64_t ctx_len, uint64_t *prime, Error *e)
{
    if (ctx_len == 0) return fail(e, "ctx_len must be positive");
    uint64_t need;
    if (mul_overflow_u64(ctx_len, 3, &need) || tokens < need)
        return fail(e, "the data holds %llu tokens, fewer than 3 x ctx_len = 3 x %llu; "
                       "use more data or a smaller ctx_len",
                    (unsigned long long)tokens, (unsigned long long)ctx_len);
    uint64_t n_chunk = tokens / ctx_len - 1;          /* >= 2 here */
    /* Largest i <= n_chunk with i % 3 == 2, then step down by 3. */
    uint64_t i = n_chunk - (n_chunk + 1) % 3;
    for (;; i -= 3) {
        if (is_prime(i)) { *prime = i; return 0; }
        if (i < 5) break;                             /* 2 is prime, so never reached */
    }
    return fail(e, "no prime p %% 3 == 2 below %llu", (unsigned long long)n_chunk);
}

/* What the data calls for, as the end of an error message. */
static void data_hint(char *b, size_t n, uint64_t tokens, uint64_t ctx_len)
{
    uint64_t want;
    Error ignored;
    if (magic_prime(tokens, ctx_len, &want, &ignored) == 0)
        snprintf(b, n, "this data (%llu tokens, ctx_len %llu) calls for --magic_prime %llu (or leave it out)",
                 (unsigned long long)tokens, (unsigned long long)ctx_len, (unsigned long long)want);
    else
        snprintf(b, n, "this data (%llu tokens) is too small for ctx_len %llu: it needs at least 3 x ctx_len tokens",
                 (unsigned long long)tokens, (unsigned long long)ctx_len);
}

int magic_prime_check(uint64_t prime, uint64_t tokens, uint64_t ctx_len, Error *e)
{
    if (ctx_len == 0) return fail(e, "ctx_len must be positive");
    uint64_t slots = tokens / ctx_len;
    char hint[200];
    data_hint(hint, sizeof hint, tokens, ctx_len);
    if (!is_prime(prime))
        return fail(e, "--magic_prime %llu is not prime; %s", (unsigned long long)prime, hint);
    if (prime % 3 != 2)
        return fail(e, "--magic_prime %llu %% 3 != 2, so ii^3 mod p does not visit every chunk; %s",
                    (unsigned long long)prime, hint);
    /* 0.9 < p / slots <= 1, in integers: 9 * slots < 10 * p and p <= slots. */
    if (prime > slots || (unsigned __int128)9 * slots >= (unsigned __int128)10 * prime)
        return fail(e, "--magic_prime %llu does not fit the data: it must lie in (0.9, 1] x %llu chunks of ctx_len "
                       "(were the numbers copied from another data set, e.g. minipile's 2926181?); %s",
                    (unsigned long long)prime, (unsigned long long)slots, hint);
    /* The last window starts at (p - 1) * ctx_len and reads ctx_len + 1 tokens. */
    if ((unsigned __int128)(prime - 1) * ctx_len + ctx_len + 1 > tokens)
        return fail(e, "--magic_prime %llu: the last window would read past the end of the data; %s",
                    (unsigned long long)prime, hint);
    return 0;
}

int magic_prime_accept(uint64_t prime, uint64_t tokens, uint64_t ctx_len, Error *e)
{
    uint64_t want;
    if (magic_prime(tokens, ctx_len, &want, e) == 0 && prime == want) return 0;
    return magic_prime_check(prime, tokens, ctx_len, e);
}
