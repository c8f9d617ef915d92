/* shuffle.h: CPython-compatible random numbers and shuffle.
 *
 * Mt19937 is the Mersenne Twister exactly as CPython's _random module runs it,
 * so that `random.seed(S); random.shuffle(x)` in Python and
 * `mt_seed_decimal(&r, "S"); mt_shuffle(&r, x, n)` here give the same order.
 *   seed:       init_by_array over the 32-bit little-endian words of abs(S)
 *               (one zero word for S = 0);
 *   getrandbits(k): k <= 32 is genrand_uint32() >> (32-k); wider values are
 *               built from 32-bit words, least significant first, the last
 *               (most significant) word shifted the same way;
 *   randbelow(n): k = bit_length(n), draw getrandbits(k) until it is < n;
 *   shuffle:    for i = n-1 down to 1: swap(x[i], x[randbelow(i+1)]). */
#ifndef RWKV7C_SHUFFLE_H
#define RWKV7C_SHUFFLE_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define MT_N 624

typedef struct {
    uint32_t state[MT_N];
    int index;
} Mt19937;

/* CPython's init_by_array(key, n); n >= 1. */
void mt_seed_words(Mt19937 *r, const uint32_t *key, size_t n);
/* random.seed(seed) for a non-negative integer below 2^64. */
void mt_seed_u64(Mt19937 *r, uint64_t seed);
/* random.seed(S) for a decimal integer of any size, optionally signed
 * ("-5" seeds like "5", as Python's abs() does).  Returns -1 on bad text. */
int  mt_seed_decimal(Mt19937 *r, const char *text, Error *e);

uint32_t mt_genrand_uint32(Mt19937 *r);
/* Python's getrandbits(k), 0 <= k <= 64. */
uint64_t mt_getrandbits(Mt19937 *r, int k);
/* Python's _randbelow(n): uniform in [0, n); n >= 1. */
uint64_t mt_randbelow(Mt19937 *r, uint64_t n);
/* Python's random.shuffle on an array of n indices (or any 64-bit items). */
void mt_shuffle(Mt19937 *r, uint64_t *items, size_t n);
#endif
