/* shuffle_test: lib/shuffle.c against values printed by CPython 3.11's random module:
 *   random.seed(S); [getrandbits(32) x3], getrandbits(64), getrandbits(40), _inst._randbelow(1000003) */
#include <stdio.h>
#include <string.h>
#include "shuffle.h"

#include "check.h"

int main(void)
{
    static const struct { const char *seed; uint32_t w[3]; uint64_t b64, b40, below; } v[] = {
        { "0", { 3626764237U, 1654615998U, 3255389356U }, 7758176404715800194ULL, 283641720628ULL, 536110 },
        { "42", { 2746317213U, 478163327U, 107420369U }, 5073395517033431291ULL, 245864938384ULL, 146316 },
        { "4294967296", { 485306839U, 1508871100U, 1794561286U }, 307624781732766930ULL, 670112917261ULL, 918650 },
        { "18446744073709551621", { 2192917427U, 3085273184U, 3778534651U }, 9498902411897203699ULL, 829360556679ULL, 363998 },
        { "-7", { 1390851128U, 4071050724U, 647892279U }, 12007621696699967246ULL, 77516799952ULL, 861168 },
        { "1000000000000000000000000000000", { 4012147334U, 2100903950U, 2256175901U }, 6440994637086204882ULL, 360870347618ULL, 152067 },
    };
    Error e;
    for (size_t t = 0; t < sizeof v / sizeof *v; t++) {
        Mt19937 r;
        CHECK(mt_seed_decimal(&r, v[t].seed, &e) == 0, "seed %s rejected", v[t].seed);
        for (int i = 0; i < 3; i++) {
            uint32_t got = mt_genrand_uint32(&r);
            CHECK(got == v[t].w[i], "seed %s word %d: %u != %u", v[t].seed, i, got, v[t].w[i]);
        }
        uint64_t g64 = mt_getrandbits(&r, 64), g40 = mt_getrandbits(&r, 40), gb = mt_randbelow(&r, 1000003);
        CHECK(g64 == v[t].b64, "seed %s getrandbits(64) %llu", v[t].seed, (unsigned long long)g64);
        CHECK(g40 == v[t].b40, "seed %s getrandbits(40) %llu", v[t].seed, (unsigned long long)g40);
        CHECK(gb == v[t].below, "seed %s randbelow %llu", v[t].seed, (unsigned long long)gb);
    }
    /* mt_seed_u64 agrees with the decimal path; leading zeros do not change the seed. */
    Mt19937 a, b;
    mt_seed_u64(&a, 4294967296ULL);
    mt_seed_decimal(&b, "0004294967296", &e);
    CHECK(memcmp(&a, &b, sizeof a) == 0, "mt_seed_u64 != mt_seed_decimal");
    mt_seed_u64(&a, 0);
    for (int i = 0; i < 700; i++) mt_genrand_uint32(&a);   /* crosses a state regeneration */
    uint32_t w = mt_genrand_uint32(&a);
    CHECK_EQ(w, 2140787315U);   /* seed 0, word 700 */
    /* random.seed(12345); x = list(range(10)); shuffle(x) -> [8,7,3,5,1,2,9,4,0,6]; again -> [0,8,1,4,6,5,9,7,2,3] */
    static const uint64_t once[10] = { 8, 7, 3, 5, 1, 2, 9, 4, 0, 6 }, twice[10] = { 0, 8, 1, 4, 6, 5, 9, 7, 2, 3 };
    uint64_t x[10];
    for (int i = 0; i < 10; i++) x[i] = (uint64_t)i;
    mt_seed_u64(&a, 12345);
    mt_shuffle(&a, x, 10);
    CHECK(memcmp(x, once, sizeof x) == 0, "first shuffle differs");
    mt_shuffle(&a, x, 10);
    CHECK(memcmp(x, twice, sizeof x) == 0, "second shuffle differs");
    CHECK(mt_seed_decimal(&a, "12a", &e) < 0, "'12a' accepted");
    CHECK(mt_seed_decimal(&a, "", &e) < 0, "'' accepted");
    CHECK(mt_seed_decimal(&a, "-", &e) < 0, "'-' accepted");
    mt_shuffle(&a, x, 0);   /* no-ops must not crash */
    mt_shuffle(&a, x, 1);
    return check_done();
}
