/* pth_logits CKPT OUT TOKEN...: our CPU model's logits (fp32, V per token,
 * recurrent mode) after each token, as raw float32 — the reference side of
 * t_pth_rwkvpip.sh.  Compiled by that test against build/librwkv7c.a. */
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

int main(int argc, char **argv)
{
    Model m;
    Error e;
    if (argc < 4) { fprintf(stderr, "usage: pth_logits CKPT OUT TOKEN...\n"); return 2; }
    if (model_load(&m, argv[1], &e)) { fprintf(stderr, "pth_logits: %s\n", e.msg); return 1; }
    ModelState *s = model_state_new(&m, &e);
    float *lg = malloc(sizeof(float) * (size_t)m.cfg.vocab_size);
    FILE *f = fopen(argv[2], "wb");
    if (!s || !lg || !f) { fprintf(stderr, "pth_logits: setup failed\n"); return 1; }
    for (int i = 3; i < argc; i++) {
        model_step(&m, s, atoi(argv[i]), lg);
        fwrite(lg, sizeof(float), (size_t)m.cfg.vocab_size, f);
    }
    if (fclose(f)) return 1;
    model_state_free(s);
    model_free(&m);
    free(lg);
    return 0;
}
