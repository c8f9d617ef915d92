#include "magic.h"

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

int magic_prime_check(uint64_t prime, uint64_t tokens, uint64_t ctx_len, Error *e)
{
    if (ctx_len == 0) return fail(e, "ctx_len must be positive");
    uint64_t slots = tokens / ctx_len;
    if (!is_prime(prime) || prime % 3 != 2)
        return fail(e, "magic_prime %llu is not a prime with p %% 3 == 2", (unsigned long long)prime);
    /* 0.9 < p / slots <= 1, in integers: 9 * slots < 10 * p and p <= slots. */
    if (prime > slots || (unsigned __int128)9 * slots >= (unsigned __int128)10 * prime)
        return fail(e, "magic_prime %llu does not fit %llu tokens at ctx_len %llu "
                       "(need 0.9 < p / %llu <= 1); recompute it with magic-prime",
                    (unsigned long long)prime, (unsigned long long)tokens,
                    (unsigned long long)ctx_len, (unsigned long long)slots);
    return 0;
}
