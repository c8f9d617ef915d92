/* lib/trainer.h as a library: errors come back (the process goes on), messages
 * go to the callback, a start from rwkv-init.pth (written by model_save, which
 * picks .pth from the name) trains, and a second run resumes from the state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "binidx.h"
#include "init.h"
#include "model.h"
#include "model_io.h"
#include "pth.h"
#include "trainer.h"

#include "check.h"

static char said[8192];
static void collect(const char *line)
{
    size_t n = strlen(said);
    snprintf(said + n, sizeof said - n, "%s\n", line);
}

static void options(TrainOptions *o, const char *dir, const char *data)
{
    train_options_default(o);
    o->proj_dir = dir;
    o->data_file = data;
    o->ctx_len = 32;
    o->micro_bsz = 4;
    o->save_minutes = 0;
    o->exit_after = 3;
    o->message = collect;
}

int main(void)
{
    Error e;
    const char *tmp = getenv("TEST_TMP");
    char dir[512], data[600], path[700], path2[700];
    snprintf(dir, sizeof dir, "%s/train_trainer_XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { printf("FAIL mkdtemp\n"); return 1; }
    snprintf(data, sizeof data, "%s/data", dir);

    /* data: 300 documents "d d d 11 d d d 0" with ids below 16 */
    BinidxWriter *w = binidx_writer_open(data, 0, &e);
    CHECK(w, "writer: %s", e.msg);
    if (!w) return 1;
    for (uint32_t i = 0; i < 300; i++) {
        uint32_t d[8] = { 1 + i % 10, 1 + i * 7 % 10, 1 + i * 3 % 10, 11, 0, 0, 0, 0 };
        d[4] = d[0]; d[5] = d[1]; d[6] = d[2];
        CHECK(binidx_writer_add(w, d, 8, &e) == 0, "add: %s", e.msg);
    }
    CHECK(binidx_writer_commit(w, &e) == 0, "commit: %s", e.msg);

    /* model_save: ".pth" gives a torch zip, other names safetensors; both load to the same weights */
    ModelConfig c;
    Model m, a, b;
    CHECK(config_default(&c, 2, 64, 16, 64, &e) == 0 && model_alloc(&m, &c, &e) == 0 && init_model(&m, 3, &e) == 0,
          "model: %s", e.msg);
    snprintf(path, sizeof path, "%s/proj", dir);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/proj/rwkv-init.pth", dir);
    snprintf(path2, sizeof path2, "%s/init.safetensors", dir);
    CHECK(model_save(&m, path, DT_BF16, 0, &e) == 0, "save pth: %s", e.msg);
    CHECK(model_save(&m, path2, DT_BF16, 0, &e) == 0, "save safetensors: %s", e.msg);
    CHECK(pth_sniff(path) == 1, "%s is not a zip", path);
    CHECK(pth_sniff(path2) == 0, "%s is a zip", path2);
    CHECK(model_load(&a, path, &e) == 0 && model_load(&b, path2, &e) == 0, "load: %s", e.msg);
    CHECK(a.layout.total == b.layout.total && !memcmp(a.w, b.w, a.layout.total * sizeof *a.w), ".pth and safetensors differ");
    model_free(&a);
    model_free(&b);
    model_free(&m);

    /* errors come back as errors */
    snprintf(path, sizeof path, "%s/proj", dir);
    TrainOptions o;
    Trainer *t;
    options(&o, path, data);
    o.n_layer = 12;
    CHECK(trainer_open(&o, &t, &e) == -1 && strstr(e.msg, "--n_layer 12 contradicts the checkpoint"), "n_layer: %s", e.msg);
    trainer_close(t);
    options(&o, path, data);
    o.magic_prime = 1023;
    CHECK(trainer_open(&o, &t, &e) == -1 && strstr(e.msg, "is not prime"), "magic_prime: %s", e.msg);
    trainer_close(t);
    options(&o, path, "nodata");
    CHECK(trainer_open(&o, &t, &e) == -1 && strstr(e.msg, "nodata"), "data: %s", e.msg);
    trainer_close(t);

    /* a run of 3 steps from rwkv-init.pth, then a resume */
    options(&o, path, data);
    CHECK(trainer_open(&o, &t, &e) == 0, "open: %s", e.msg);
    if (t && !fails) {
        CHECK(trainer_run(t) == 0, "run: %s", said);
        CHECK(strstr(said, "starting from ") && strstr(said, "proj/rwkv-init.pth (step 0, miniepoch 0)"), "said: %s", said);
    }
    trainer_close(t);
    snprintf(path2, sizeof path2, "%s/proj/train-state-00000003.safetensors", dir);
    CHECK(access(path2, F_OK) == 0, "no %s", path2);
    said[0] = 0;
    options(&o, path, data);
    o.exit_after = 1;
    CHECK(trainer_open(&o, &t, &e) == 0, "reopen: %s", e.msg);
    if (t && !fails) {
        CHECK(trainer_run(t) == 0, "rerun: %s", said);
        CHECK(strstr(said, "resuming from ") && strstr(said, "proj/train-state-00000003.safetensors (step 3"), "said: %s", said);
    }
    trainer_close(t);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!fails && system(cmd)) printf("note: could not remove %s\n", dir);
    return check_done();
}
