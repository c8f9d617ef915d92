/* libFuzzer target for the .pth reader: the strict zip pass, the pickle
 * recogniser and the tensor checks (pth_parse), plus the pickle recogniser on
 * raw input.  CRC checks are off so mutations reach the deeper layers. */
#include <stdint.h>
#include <stddef.h>
#include "pickle.h"
#include "pth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Error e;
    TensorSet ts;
    ts_init(&ts);
    if (pth_parse(data, size, &ts, PTH_NO_CRC, &e) == 0) {
        volatile uint8_t sink = 0;
        for (int i = 0; i < ts.n; i++)   /* every byte of every tensor must be readable */
            for (size_t k = 0; k < ts.t[i].nbytes; k++) sink ^= ((const uint8_t *)ts.t[i].data)[k];
        (void)sink;
        ts_free(&ts);
    }
    PickleDict d;
    if (pickle_parse(data, size, &d, &e) == 0) pickle_free(&d);
    return 0;
}
