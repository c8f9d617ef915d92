/* metrics-plot: turn rwkv-train's metrics.jsonl into an SVG with the loss
 * curve (raw and smoothed) above the learning-rate curve. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "growbuf.h"
#include "input.h"
#include "jsonl.h"
#include "utf8.h"
#include "util.h"

typedef struct { double step, loss, lr; } Point;

static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: metrics-plot [-o FILE.svg] [-s N] [-t TITLE] [-f] [METRICS.jsonl|-]\n"
"Plot the loss (raw, and a moving average over N steps) and the learning rate\n"
"from rwkv-train's metrics.jsonl (default: stdin) as an SVG (default: stdout).\n"
"\n"
"  -o, --output FILE   write FILE atomically instead of stdout (-: stdout)\n"
"  -s, --smooth N      moving-average window in steps (default: about 1/50 of the run)\n"
"  -t, --title TEXT    title (default: the input name)\n"
"  -f, --force         overwrite FILE\n"
"  -h, --help          show this help\n"
"  -V, --version       show the version\n"
"\n"
"Each line is one JSON object with \"step\" (a number), \"loss\" and \"lr\" (numbers,\n"
"or null); records with \"loss\":null (skipped non-finite steps) are left out of\n"
"the loss curve.  A line that is not such an object is an error (FILE:LINE).\n"
"Exit status: 0 success, 1 bad or unreadable input or a failed write, 2 usage.\n");
}

/* Member key of the metrics record on line: a JSON number (*v), or null
 * (NAN) where null_ok.  Returns 0, or -1 with e saying what is wrong. */
static int number_member(const char *line, size_t len, const char *key, int null_ok, double *v, Error *e)
{
    const char *val;
    JsonError je;
    long n = jsonl_member(line, len, key, strlen(key), &val, &je);
    if (n < 0) return fail(e, "%s", je.msg);
    if (n == 0) return fail(e, "not a metrics record (needs \"step\", \"loss\" and \"lr\")");
    if (null_ok && n == 4 && !memcmp(val, "null", 4)) { *v = NAN; return 0; }
    char *end;
    if (*val == '-' || (*val >= '0' && *val <= '9')) {   /* a validated JSON number: strtod reads all of it */
        *v = strtod(val, &end);
        if (end == val + n) return 0;
    }
    return fail(e, "\"%s\" is not a number%s", key, null_ok ? " or null" : "");
}

/* One line of metrics.jsonl: a JSON object with a finite "step" and numeric
 * or null "loss" and "lr" (other members are ignored). */
static int parse_record(const char *line, size_t len, Point *p, Error *e)
{
    if (number_member(line, len, "step", 0, &p->step, e) || number_member(line, len, "loss", 1, &p->loss, e) ||
        number_member(line, len, "lr", 1, &p->lr, e))
        return -1;
    if (!isfinite(p->step)) return fail(e, "\"step\" is not a finite number");
    return 0;
}

/* Every record of in into *pts (malloc'd, n > 0).  Errors name FILE:LINE. */
static int read_points(Input *in, Point **pts, size_t *np, Error *e)
{
    Point *pt = NULL;
    size_t n = 0, cap = 0;
    char *line;
    size_t len;
    int r;
    while ((r = input_getline(in, &line, &len, e)) == 1) {
        if (jsonl_is_blank(line, len)) continue;
        Point p;
        if (parse_record(line, len, &p, e)) {
            fail_prefix(e, "%s:%llu", input_name(in), (unsigned long long)input_lineno(in));
            break;
        }
        if (grow(&pt, &cap, n + 1)) { fail(e, "out of memory"); break; }
        pt[n++] = p;
    }
    if (r == 1 || r < 0) { free(pt); return -1; }
    if (n == 0) { free(pt); return fail(e, "%s: no records", input_name(in)); }
    *pts = pt;
    *np = n;
    return 0;
}

/* Escaped for XML.  Control characters and bytes that are not UTF-8 (a file
 * name in Latin-1, say) are not allowed in XML: each becomes U+FFFD. */
static void xml_text(FILE *fp, const char *s)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t n = strlen(s);
    while (n > 0) {
        uint32_t cp;
        int k = utf8_decode(u, n, &cp);
        if (k == 0 || (cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7f || cp == 0xfffe || cp == 0xffff) {
            fputs("\xef\xbf\xbd", fp);
            k = k ? k : 1;
        } else if (cp == '<') fputs("&lt;", fp);
        else if (cp == '>') fputs("&gt;", fp);
        else if (cp == '&') fputs("&amp;", fp);
        else if (cp == '"') fputs("&quot;", fp);
        else fwrite(u, 1, (size_t)k, fp);
        u += k;
        n -= (size_t)k;
    }
}

/* Plot coordinates are long double: a span of doubles (1e308 - -1e308) or its
 * padding cannot overflow, and ticks near 2^53 stay distinct. */
typedef long double Real;

/* At most this many ticks per axis, whatever the range: no input can make the
 * tick loops run away. */
enum { MAX_TICKS = 50 };

/* "Nice" tick spacing for a range. */
static Real tick_step(Real span, int want)
{
    if (!(span > 0) || !isfinite(span)) return 1;
    Real raw = span / want, mag = powl(10, floorl(log10l(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/* A degenerate range (span at most min_span, or too small next to its values
 * for distinct ticks: steps 16 apart at 1e17) is widened about its centre to
 * max(width, 2e-3 * |the larger end|), so a constant series gets a visible band
 * even where +-0.5 is lost to rounding.  Real ranges are left alone. */
static void widen(Real *lo, Real *hi, Real min_span, Real width)
{
    Real big = fabsl(*lo) > fabsl(*hi) ? fabsl(*lo) : fabsl(*hi), want = big * 2e-3L;
    if (*hi - *lo > min_span && *hi - *lo > big * 1e-12L) return;
    if (want < width) want = width;
    Real mid = *lo / 2 + *hi / 2;
    *lo = mid - want / 2;
    *hi = mid + want / 2;
}

/* Significant digits that tell ticks ts apart at magnitude up to big. */
static int tick_digits(Real big, Real ts, int at_least)
{
    int d = big > ts ? (int)ceill(log10l(big / ts)) + 1 : 1;
    return d < at_least ? at_least : d > 20 ? 20 : d;
}

typedef struct { double x0, y0, w, h; Real xmin, xmax, ymin, ymax; } Panel;
static double px(const Panel *p, Real x) { return (double)(p->x0 + (x - p->xmin) / (p->xmax - p->xmin) * p->w); }
static double py(const Panel *p, Real y) { return (double)(p->y0 + p->h - (y - p->ymin) / (p->ymax - p->ymin) * p->h); }

static void axes(FILE *fp, const Panel *p, const char *ylabel, int sci)
{
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
            p->x0, p->y0, p->w, p->h);
    Real ts = tick_step(p->ymax - p->ymin, 5), first = ceill(p->ymin / ts);
    Real big = fabsl(p->ymin) > fabsl(p->ymax) ? fabsl(p->ymin) : fabsl(p->ymax);
    int digits = tick_digits(big, ts, sci ? 2 : 3);
    /* Each tick is (first + i) * ts, not a running sum, so rounding cannot stall it. */
    for (int i = 0; i < MAX_TICKS; i++) {
        Real v = (first + i) * ts;
        if (v > p->ymax + ts * 1e-9L) break;
        double y = py(p, v);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", p->x0, y, p->x0 + p->w, y);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", p->x0 - 6, y + 4);
        fprintf(fp, "%.*Lg", digits, fabsl(v) < ts * 1e-6L ? 0.0L : v);
        fputs("</text>\n", fp);
    }
    /* Steps are whole numbers: no tick between two of them. */
    Real xs = tick_step(p->xmax - p->xmin, 8), xfirst;
    if (xs < 1) xs = 1;
    xfirst = ceill(p->xmin / xs);
    Real xbig = fabsl(p->xmin) > fabsl(p->xmax) ? fabsl(p->xmin) : fabsl(p->xmax);
    for (int i = 0; i < MAX_TICKS; i++) {
        Real v = (xfirst + i) * xs;
        if (v > p->xmax + xs * 1e-9L) break;
        double x = px(p, v);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", x, p->y0, x, p->y0 + p->h);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, p->y0 + p->h + 16);
        if (xbig < 1e15L) fprintf(fp, "%.0Lf", v);
        else fprintf(fp, "%.*Lg", tick_digits(xbig, xs, 3), v);
        fputs("</text>\n", fp);
    }
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" transform=\"rotate(-90 %.1f %.1f)\" text-anchor=\"middle\">%s</text>\n",
            p->x0 - 52, p->y0 + p->h / 2, p->x0 - 52, p->y0 + p->h / 2, ylabel);
}

static void polyline(FILE *fp, const Panel *p, const Point *pt, size_t n, const double *ys, const char *style)
{
    if (!n) return;
    fprintf(fp, "<polyline fill=\"none\" %s points=\"", style);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ys[i])) continue;
        fprintf(fp, "%s%.1f,%.1f", k++ ? " " : "", px(p, pt[i].step), py(p, ys[i]));
    }
    fputs("\"/>\n", fp);
}

/* The SVG of n points: loss (raw, and its trailing moving average over
 * `smooth` records) above the learning rate.  -1 only when out of memory. */
static int plot(FILE *fp, const char *title, const Point *pt, size_t n, uint64_t smooth, Error *e)
{
    double *loss = malloc(n * sizeof *loss), *avg = malloc(n * sizeof *avg), *lr = malloc(n * sizeof *lr);
    if (!loss || !avg || !lr) { free(loss); free(avg); free(lr); return fail(e, "out of memory"); }
    long double sum = 0; /* long double: a sum of doubles near 1e308 does not overflow */
    size_t cnt = 0;
    Real lmin = INFINITY, lmax = -INFINITY, rmin = 0, rmax = 0, smin = pt[0].step, smax = pt[0].step;
    for (size_t i = 0; i < n; i++) {
        loss[i] = isfinite(pt[i].loss) ? pt[i].loss : NAN;
        lr[i] = isfinite(pt[i].lr) ? pt[i].lr : NAN;
        if (isfinite(loss[i])) { sum += loss[i]; cnt++; if (loss[i] < lmin) lmin = loss[i]; if (loss[i] > lmax) lmax = loss[i]; }
        if (i >= smooth && isfinite(loss[i - smooth])) { sum -= loss[i - smooth]; cnt--; }
        avg[i] = cnt ? (double)(sum / cnt) : NAN;
        if (isfinite(lr[i]) && lr[i] > rmax) rmax = lr[i];
        if (isfinite(lr[i]) && lr[i] < rmin) rmin = lr[i];
        if (pt[i].step < smin) smin = pt[i].step;
        if (pt[i].step > smax) smax = pt[i].step;
    }
    if (!isfinite(lmin)) { lmin = 0; lmax = 1; }
    widen(&lmin, &lmax, 1e-9L, 1);
    /* a step alone: [s, s + 1] as before, so runs that start at 0 keep 0 at the left edge */
    if (smax == smin) smax = smin + 1;
    widen(&smin, &smax, 0, 1);
    if (rmax == rmin) rmax = 1;
    widen(&rmin, &rmax, 0, 0);

    const double W = 900, H = 620;
    Panel top = { 80, 50, 790, 330, smin, smax, lmin - 0.05L * (lmax - lmin), lmax + 0.05L * (lmax - lmin) };
    Panel bot = { 80, 440, 790, 130, smin, smax, rmin * 1.05L, rmax * 1.05L };
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H, W, H);
    fputs("<text x=\"450\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", fp);
    xml_text(fp, title);
    /* the last smoothed loss that exists: a run may end on skipped (null) steps */
    size_t last = n;
    while (last > 0 && !isfinite(avg[last - 1])) last--;
    if (last) fprintf(fp, " (%zu steps, last loss %.4f)</text>\n", n, avg[last - 1]);
    else fprintf(fp, " (%zu steps, no finite loss)</text>\n", n);
    axes(fp, &top, "loss", 0);
    polyline(fp, &top, pt, n, loss, "stroke=\"#9ecae1\" stroke-width=\"1\"");
    polyline(fp, &top, pt, n, avg, "stroke=\"#08519c\" stroke-width=\"2\"");
    fprintf(fp, "<text x=\"860\" y=\"68\" text-anchor=\"end\" fill=\"#08519c\">loss, mean of %llu steps</text>\n",
            (unsigned long long)smooth);
    axes(fp, &bot, "learning rate", 1);
    polyline(fp, &bot, pt, n, lr, "stroke=\"#d94801\" stroke-width=\"2\"");
    fprintf(fp, "<text x=\"475\" y=\"610\" text-anchor=\"middle\">step</text>\n</svg>\n");
    free(loss); free(avg); free(lr);
    return 0;
}

/* The SVG into path, atomically. */
static int write_svg(const char *path, int force, const char *title, const Point *pt, size_t n, uint64_t smooth, Error *e)
{
    AtomicFile af;
    if (atomic_open(&af, path, force, e)) return -1;
    if (plot(af.fp, title, pt, n, smooth, e)) { atomic_abort(&af); return -1; }
    if (ferror(af.fp)) { atomic_abort(&af); return fail(e, "%s: write failed", path); }
    return atomic_commit(&af, e);
}

int main(int argc, char **argv)
{
    tool_init("metrics-plot");
    static const struct option opts[] = {
        { "output", required_argument, 0, 'o' }, { "smooth", required_argument, 0, 's' },
        { "title", required_argument, 0, 't' },  { "force", no_argument, 0, 'f' },
        { "help", no_argument, 0, 'h' },         { "version", no_argument, 0, 'V' }, { 0, 0, 0, 0 }
    };
    const char *out = NULL, *title = NULL;
    uint64_t smooth = 0;
    int force = 0, c;
    while ((c = getopt_long(argc, argv, "o:s:t:fhV", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = strcmp(optarg, "-") ? optarg : NULL; break;   /* -o -: stdout, not a file named '-' */
        case 's':
            if (parse_u64(optarg, &smooth) || smooth == 0) return bad_option("smooth", optarg, "a number of steps, 1 or more");
            break;
        case 't': title = optarg; break;
        case 'f': force = 1; break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind > 1) return usage_error("one input at most, got '%s' and '%s'", argv[optind], argv[optind + 1]);
    const char *path = optind < argc ? argv[optind] : "-";

    Error e;
    Input *in = input_open(path, &e);
    if (!in) return report(&e);
    Point *pt = NULL;
    size_t n = 0;
    int rc = read_points(in, &pt, &n, &e);
    if (!rc) {
        if (!smooth) smooth = n / 50 > 1 ? n / 50 : 1;
        if (!title) title = input_name(in);
        rc = out ? write_svg(out, force, title, pt, n, smooth, &e) : plot(stdout, title, pt, n, smooth, &e);
    }
    free(pt);
    input_close(in);
    if (rc) return report(&e);
    return out ? 0 : close_stdout();
}
