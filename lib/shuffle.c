/* shuffle.c: MT19937 as CPython's Modules/_randommodule.c runs it. */
#include "shuffle.h"

#include <stdlib.h>
#include <string.h>

#define MT_M 397
#define MATRIX_A 0x9908b0dfU
#define UPPER_MASK 0x80000000U
#define LOWER_MASK 0x7fffffffU

static void init_genrand(Mt19937 *r, uint32_t s)
{
    uint32_t *mt = r->state;
    mt[0] = s;
    for (int i = 1; i < MT_N; i++)
        mt[i] = 1812433253U * (mt[i - 1] ^ (mt[i - 1] >> 30)) + (uint32_t)i;
    r->index = MT_N;
}

void mt_seed_words(Mt19937 *r, const uint32_t *key, size_t n)
{
    uint32_t *mt = r->state;
    init_genrand(r, 19650218U);
    size_t i = 1, j = 0;
    for (size_t k = MT_N > n ? MT_N : n; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525U)) + key[j] + (uint32_t)j;
        i++; j++;
        if (i >= MT_N) { mt[0] = mt[MT_N - 1]; i = 1; }
        if (j >= n) j = 0;
    }
    for (size_t k = MT_N - 1; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941U)) - (uint32_t)i;
        i++;
        if (i >= MT_N) { mt[0] = mt[MT_N - 1]; i = 1; }
    }
    mt[0] = 0x80000000U;   /* assures a non-zero initial state */
    r->index = MT_N;
}

void mt_seed_u64(Mt19937 *r, uint64_t seed)
{
    uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
    mt_seed_words(r, key, key[1] ? 2 : 1);
}

int mt_seed_decimal(Mt19937 *r, const char *text, Error *e)
{
    const char *p = text;
    if (*p == '-' || *p == '+') p++;
    size_t digits = strlen(p);
    if (digits == 0 || strspn(p, "0123456789") != digits)
        return fail(e, "invalid seed '%s' (want a decimal integer)", text);
    /* Little-endian 32-bit words of the magnitude: at most one word per 9 digits, plus one. */
    size_t cap = digits / 9 + 2, used = 1;
    uint32_t *w = calloc(cap, sizeof *w);
    if (!w) return fail(e, "out of memory");
    for (; *p; p++) {
        uint64_t carry = (uint64_t)(*p - '0');
        for (size_t i = 0; i < used; i++) {
            uint64_t v = (uint64_t)w[i] * 10 + carry;
            w[i] = (uint32_t)v;
            carry = v >> 32;
        }
        if (carry) w[used++] = (uint32_t)carry;
    }
    while (used > 1 && w[used - 1] == 0) used--;   /* leading zeros ("007") */
    mt_seed_words(r, w, used);
    free(w);
    return 0;
}

static void generate(Mt19937 *r)
{
    static const uint32_t mag01[2] = { 0, MATRIX_A };
    uint32_t *mt = r->state, y;
    int kk;
    for (kk = 0; kk < MT_N - MT_M; kk++) {
        y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
        mt[kk] = mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 1];
    }
    for (; kk < MT_N - 1; kk++) {
        y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
        mt[kk] = mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1];
    }
    y = (mt[MT_N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
    mt[MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1];
    r->index = 0;
}

uint32_t mt_genrand_uint32(Mt19937 *r)
{
    if (r->index >= MT_N) generate(r);
    uint32_t y = r->state[r->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    return y;
}

uint64_t mt_getrandbits(Mt19937 *r, int k)
{
    if (k <= 0) return 0;
    if (k <= 32) return mt_genrand_uint32(r) >> (32 - k);
    uint64_t low = mt_genrand_uint32(r);
    uint64_t high = mt_genrand_uint32(r) >> (64 - k);
    return low | high << 32;
}

uint64_t mt_randbelow(Mt19937 *r, uint64_t n)
{
    if (n == 0) return 0;   /* undefined in Python; never draw */
    int k = 64 - __builtin_clzll(n);   /* bit_length(n) */
    uint64_t v;
    do v = mt_getrandbits(r, k); while (v >= n);
    return v;
}

void mt_shuffle(Mt19937 *r, uint64_t *items, size_t n)
{
    for (size_t i = n > 0 ? n - 1 : 0; i > 0; i--) {
        size_t j = (size_t)mt_randbelow(r, (uint64_t)i + 1);
        uint64_t t = items[i]; items[i] = items[j]; items[j] = t;
    }
}
