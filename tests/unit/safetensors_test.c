/* safetensors_test: safetensors write/read round trip, model save/load in every
 * dtype, and the strict reader's rejections on hand-made headers.
 * Also a driver for tests/t_safetensors*.sh:
 *   safetensors_test dump FILE   print "name dtype shape sum" per tensor (ckpt_read)
 *   safetensors_test load FILE   model_load; exit 1 with the error message */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "model.h"
#include "model_io.h"
#include "safetensors.h"

#include "check.h"

/* Build a file from a header string and n data bytes; parse it; return rc and message. */
static int try_header(const char *json, size_t ndata, Error *e)
{
    size_t hl = strlen(json);
    size_t len = 8 + hl + ndata;
    unsigned char *b = calloc(1, len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, hl);
    TensorSet ts;
    int rc = st_parse(b, len, &ts, e);
    if (rc == 0) ts_free(&ts);
    free(b);
    return rc;
}

static void expect_reject(const char *json, size_t ndata, const char *want)
{
    Error e = { "" };
    int rc = try_header(json, ndata, &e);
    CHECK(rc != 0, "accepted: %s", json);
    CHECK(rc == 0 || strstr(e.msg, want), "for %s: message '%s' lacks '%s'", json, e.msg, want);
}

static double elem(const Tensor *t, int64_t i)
{
    const unsigned char *p = (const unsigned char *)t->data + (size_t)i * dtype_size(t->dtype);
    union { float f; double d; int64_t i64; int32_t i32; int16_t i16; uint16_t u16; } v;
    memcpy(&v, p, dtype_size(t->dtype));
    switch (t->dtype) {
    case DT_F32: return v.f;
    case DT_F64: return v.d;
    case DT_BF16: return bf16_to_f32(v.u16);
    case DT_F16: return f16_to_f32(v.u16);
    case DT_I64: return (double)v.i64;
    case DT_I32: return v.i32;
    case DT_I16: return v.i16;
    case DT_I8: return (int8_t)p[0];
    default: return p[0];
    }
}

static int driver(const char *mode, const char *path)
{
    Error e = { "" };
    if (strcmp(mode, "load") == 0) {
        Model m;
        if (model_load(&m, path, &e)) { fprintf(stderr, "safetensors_test: %s\n", e.msg); return 1; }
        printf("loaded %d layers, C=%d, V=%d, %zu params\n", m.cfg.n_layer, m.cfg.n_embd, m.cfg.vocab_size, m.layout.total);
        model_free(&m);
        return 0;
    }
    TensorSet ts;
    if (ckpt_read(path, &ts, &e)) { fprintf(stderr, "safetensors_test: %s\n", e.msg); return 1; }
    for (int i = 0; i < ts.n; i++) {
        const Tensor *t = &ts.t[i];
        double sum = 0;
        for (int64_t k = 0; k < tensor_numel(t); k++) sum += elem(t, k);
        printf("%s %s ", t->name, dtype_name(t->dtype));
        if (!t->ndim) printf("scalar");
        for (int k = 0; k < t->ndim; k++) printf("%s%lld", k ? "x" : "", (long long)t->shape[k]);
        printf(" %.17g\n", sum);
    }
    for (int i = 0; i < ts.nmeta; i++)
        if (strncmp(ts.meta_key[i], "xxh3:", 5) != 0) printf("meta %s %s\n", ts.meta_key[i], ts.meta_val[i]);
    ts_free(&ts);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3) return driver(argv[1], argv[2]);
    Error e = { "" };
    char path[64];
    snprintf(path, sizeof path, "st_rt_%d.safetensors", (int)getpid());

    /* accepted: the basic forms */
    CHECK(try_header("{}", 0, &e) == 0, "empty header: %s", e.msg);
    CHECK(try_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}  ", 4, &e) == 0, "scalar: %s", e.msg);
    CHECK(try_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                     "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},\"__metadata__\":{\"k\":\"v\\u00e9\"}}", 4, &e) == 0,
          "empty tensor: %s", e.msg);

    /* rejected */
    expect_reject("[]", 0, "start with '{'");
    expect_reject("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype \"F33\"");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "tensor a: data_offsets span 4 bytes");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 6, "tensor b: data overlaps");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "tensor b: gap");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "not covered");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "tensor a: truncated");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate tensor a");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "fraction");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative integer");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown field");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, "no data_offsets");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflows");
    expect_reject("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4, "unexpected bytes");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "unexpected end");
    expect_reject("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "UTF-8");
    expect_reject("{\"__metadata__\":{\"xxh3:a\":\"0000000000000000\"},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor a: checksum mismatch");
    {
        unsigned char b[16] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{' };
        TensorSet ts;
        CHECK(st_parse(b, sizeof b, &ts, &e) != 0 && strstr(e.msg, "exceeds"), "huge header: %s", e.msg);
        unsigned char c[16] = { 100, 0, 0, 0, 0, 0, 0, 0, '{' };
        CHECK(st_parse(c, sizeof c, &ts, &e) != 0 && strstr(e.msg, "truncated"), "short header: %s", e.msg);
        CHECK(st_parse(c, 5, &ts, &e) != 0 && strstr(e.msg, "too short"), "tiny: %s", e.msg);
    }

    /* model round trip in each dtype */
    ModelConfig c;
    CHECK(config_default(&c, 2, 128, 300, 64, &e) == 0, "config: %s", e.msg);
    Model m;
    CHECK(model_alloc(&m, &c, &e) == 0, "alloc: %s", e.msg);
    for (size_t i = 0; i < m.layout.total; i++) m.w[i] = (float)sin((double)i * 0.37) * 3.0f;
    DType dts[] = { DT_F32, DT_BF16, DT_F16 };
    for (int d = 0; d < 3; d++) {
        unlink(path);
        CHECK(model_save(&m, path, dts[d], 0, &e) == 0, "save %s: %s", dtype_name(dts[d]), e.msg);
        CHECK(model_save(&m, path, dts[d], 0, &e) != 0 && strstr(e.msg, "exists"), "no overwrite without flag");
        Model m2;
        CHECK(model_load(&m2, path, &e) == 0, "load %s: %s", dtype_name(dts[d]), e.msg);
        if (m2.w) {
            CHECK(m2.layout.total == m.layout.total, "total");
            size_t bad = 0;
            for (size_t i = 0; i < m.layout.total; i++) {
                float want = dts[d] == DT_F32 ? m.w[i] : dts[d] == DT_BF16 ? bf16_round(m.w[i]) : f16_to_f32(f32_to_f16(m.w[i]));
                if (m2.w[i] != want) bad++;
            }
            CHECK(bad == 0, "%zu values differ after %s round trip", bad, dtype_name(dts[d]));
            CHECK(m2.cfg.d_gate == c.d_gate && m2.cfg.layer0_v == 1 && m2.cfg.n_layer == 2, "config back");
            model_free(&m2);
        }
        TensorSet ts;
        CHECK(ckpt_read(path, &ts, &e) == 0, "ckpt_read: %s", e.msg);
        CHECK(ts.n == m.layout.n && strcmp(ts.t[0].name, "emb.weight") == 0 && strcmp(ts.t[ts.n - 1].name, "head.weight") == 0, "order");
        CHECK(ts_get_meta(&ts, "model_type") && strcmp(ts_get_meta(&ts, "model_type"), "x070") == 0, "model_type");
        /* write the read set again: checksums are recomputed, bytes identical */
        char p2[80];
        snprintf(p2, sizeof p2, "%s.2", path);
        unlink(p2);
        CHECK(st_write(p2, &ts, 0, &e) == 0, "rewrite: %s", e.msg);
        ts_free(&ts);
        TensorSet ts2;
        CHECK(st_read(p2, &ts2, &e) == 0, "reread: %s", e.msg);
        ts_free(&ts2);
        unlink(p2);
    }
    /* NaN is rejected naming the tensor */
    model_param(&m, "blocks.1.att.a0")[5] = NAN;
    unlink(path);
    CHECK(model_save(&m, path, DT_F32, 1, &e) == 0, "save: %s", e.msg);
    Model m3;
    CHECK(model_load(&m3, path, &e) != 0 && strstr(e.msg, "blocks.1.att.a0") && strstr(e.msg, "NaN"), "NaN: %s", e.msg);
    CHECK(ckpt_read("/nonexistent/x", &(TensorSet){0}, &e) != 0 && strstr(e.msg, "/nonexistent/x"), "missing file: %s", e.msg);
    unlink(path);
    model_free(&m);
    return check_done();
}
