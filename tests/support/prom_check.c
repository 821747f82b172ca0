/* The strict Prometheus text-format checker of prom_check.h: a small
 * recursive-descent parser over lines, with the format's rules on names,
 * labels, escapes, values, TYPE/HELP placement, family contiguity and the
 * sample names a summary, counter or gauge may carry. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/prom_check.h"

#define MAX_FAMILIES 512
#define MAX_NAME     200
#define MAX_SERIES   8192

typedef struct family {
    char name[MAX_NAME];
    char type[16];
    bool help, done; /* done: another family's samples came after ours */
} family_t;

typedef struct checker {
    family_t fam[MAX_FAMILIES];
    size_t n_fam;
    family_t *cur; /* family of the last sample */
    char *series[MAX_SERIES];
    size_t n_series;
    int line;
    char *err;
    size_t errlen;
} checker_t;

static int bad(checker_t *c, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(c->err, c->errlen, "line %d: ", c->line);
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < c->errlen)
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static bool name_start(char ch, bool colon)
{
    return isalpha((unsigned char)ch) || ch == '_' || (colon && ch == ':');
}
static bool name_char(char ch, bool colon)
{
    return name_start(ch, colon) || isdigit((unsigned char)ch);
}

/* Reads a metric (colon=true) or label name at *p into out. */
static int read_name(checker_t *c, const char **p, char *out, bool colon)
{
    const char *s = *p;
    if (!name_start(*s, colon))
        return bad(c, "bad name start '%c'", *s);
    size_t n = 0;
    while (name_char(*s, colon)) {
        if (n + 1 >= MAX_NAME)
            return bad(c, "name too long");
        out[n++] = *s++;
    }
    out[n] = '\0';
    *p = s;
    return 0;
}

static family_t *find_family(checker_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_fam; i++)
        if (strcmp(c->fam[i].name, name) == 0)
            return &c->fam[i];
    return NULL;
}

static family_t *add_family(checker_t *c, const char *name)
{
    family_t *f = find_family(c, name);
    if (f || c->n_fam == MAX_FAMILIES)
        return f;
    f = &c->fam[c->n_fam++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    return f;
}

/* Go's strconv.ParseFloat as Prometheus uses it, plus NaN/+Inf/-Inf. */
static int read_value(checker_t *c, const char *s, const char **end)
{
    const char *e = s;
    while (*e && *e != ' ')
        e++;
    size_t n = (size_t)(e - s);
    if (n == 0)
        return bad(c, "missing value");
    char tmp[64];
    if (n >= sizeof tmp)
        return bad(c, "value too long");
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *end = e;
    if (!strcmp(tmp, "NaN") || !strcmp(tmp, "+Inf") || !strcmp(tmp, "-Inf"))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!strchr("0123456789+-.eE", tmp[i]))
            return bad(c, "bad value '%s'", tmp);
    }
    char *q;
    strtod(tmp, &q);
    if (*q != '\0')
        return bad(c, "bad value '%s'", tmp);
    return 0;
}

/* Which family does sample name belong to, given the declared types? */
static family_t *family_of(checker_t *c, const char *name, bool has_quantile)
{
    family_t *f = find_family(c, name);
    if (f)
        return f;
    static const char *const sfx[] = {"_sum", "_count"};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(name), k = strlen(sfx[i]);
        if (n > k && strcmp(name + n - k, sfx[i]) == 0) {
            char base[MAX_NAME];
            snprintf(base, sizeof base, "%.*s", (int)(n - k), name);
            f = find_family(c, base);
            if (f && strcmp(f->type, "summary") == 0 && !has_quantile)
                return f;
        }
    }
    return NULL;
}

static int check_sample(checker_t *c, const char *s)
{
    char name[MAX_NAME], lname[MAX_NAME];
    const char *p = s;
    if (read_name(c, &p, name, true))
        return -1;
    char labels[64][MAX_NAME];
    size_t n_labels = 0;
    bool has_quantile = false;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (read_name(c, &p, lname, false))
                return -1;
            for (size_t i = 0; i < n_labels; i++)
                if (strcmp(labels[i], lname) == 0)
                    return bad(c, "duplicate label %s", lname);
            if (n_labels == 64)
                return bad(c, "too many labels");
            snprintf(labels[n_labels++], MAX_NAME, "%s", lname);
            if (strcmp(lname, "quantile") == 0)
                has_quantile = true;
            if (*p++ != '=')
                return bad(c, "expected '=' after label %s", lname);
            if (*p++ != '"')
                return bad(c, "expected '\"' to open label %s", lname);
            const char *qstart = p;
            while (*p != '"') {
                if (*p == '\0' || *p == '\n')
                    return bad(c, "unterminated label value");
                if (*p == '\\') {
                    p++;
                    if (*p != '\\' && *p != '"' && *p != 'n')
                        return bad(c, "bad escape \\%c in label value", *p);
                }
                p++;
            }
            if (has_quantile && strcmp(lname, "quantile") == 0) {
                char *q;
                double v = strtod(qstart, &q);
                if (q != p || !(v >= 0 && v <= 1))
                    return bad(c, "quantile label is not a number in [0,1]");
            }
            p++;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return bad(c, "expected ',' or '}' after label value");
        }
        p++;
    }
    /* The series key: name and label set, to catch duplicates. */
    size_t keylen = (size_t)(p - s);
    if (*p++ != ' ')
        return bad(c, "expected a space before the value");
    const char *end = p;
    if (read_value(c, p, &end))
        return -1;
    if (*end == ' ') { /* optional timestamp: an integer */
        end++;
        if (*end == '-')
            end++;
        if (!isdigit((unsigned char)*end))
            return bad(c, "bad timestamp");
        while (isdigit((unsigned char)*end))
            end++;
    }
    if (*end != '\0')
        return bad(c, "trailing characters after the value");

    family_t *f = family_of(c, name, has_quantile);
    if (f == NULL || f->type[0] == '\0')
        return bad(c, "sample %s has no TYPE before it", name);
    if (!f->help)
        return bad(c, "family %s has no HELP", f->name);
    if (f->done)
        return bad(c, "family %s is not contiguous", f->name);
    if (c->cur && c->cur != f)
        c->cur->done = true;
    c->cur = f;
    if (strcmp(f->type, "summary") == 0) {
        bool base = strcmp(name, f->name) == 0;
        if (base != has_quantile)
            return bad(c, "summary %s: quantile label only (and always) on the base sample", name);
    } else if (strcmp(name, f->name) != 0) {
        return bad(c, "%s sample named %s", f->type, name);
    } else if (has_quantile) {
        return bad(c, "quantile label outside a summary");
    }
    for (size_t i = 0; i < c->n_series; i++)
        if (strlen(c->series[i]) == keylen && strncmp(c->series[i], s, keylen) == 0)
            return bad(c, "duplicate series %.*s", (int)keylen, s);
    if (c->n_series < MAX_SERIES)
        c->series[c->n_series++] = strndup(s, keylen);
    return 0;
}

static int check_comment(checker_t *c, const char *s)
{
    bool help = strncmp(s, "# HELP ", 7) == 0, type = strncmp(s, "# TYPE ", 7) == 0;
    if (!help && !type)
        return 0; /* an ordinary comment */
    const char *p = s + 7;
    char name[MAX_NAME];
    if (read_name(c, &p, name, true))
        return -1;
    family_t *f = add_family(c, name);
    if (f == NULL)
        return bad(c, "too many families");
    if (f->done || (c->cur && c->cur == f))
        return bad(c, "%s for %s after its samples", help ? "HELP" : "TYPE", name);
    if (help) {
        if (f->help)
            return bad(c, "second HELP for %s", name);
        f->help = true;
        if (*p != ' ')
            return bad(c, "HELP without text");
        for (p++; *p; p++)
            if (*p == '\\' && p[1] != '\\' && p[1] != 'n')
                return bad(c, "bad escape in HELP");
            else if (*p == '\\')
                p++;
        return 0;
    }
    if (f->type[0])
        return bad(c, "second TYPE for %s", name);
    if (*p++ != ' ')
        return bad(c, "TYPE without a type");
    static const char *const types[] = {"counter", "gauge", "summary", "histogram", "untyped"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(p, types[i]) == 0) {
            snprintf(f->type, sizeof f->type, "%s", p);
            return 0;
        }
    }
    return bad(c, "unknown type '%s'", p);
}

int prom_check(const char *text, char *err, size_t errlen)
{
    checker_t *c = calloc(1, sizeof *c);
    c->err = err;
    c->errlen = errlen;
    int rc = 0;
    size_t len = strlen(text);
    if (len == 0 || text[len - 1] != '\n') {
        snprintf(err, errlen, "exposition must end with a newline");
        rc = -1;
    }
    for (const char *s = text; rc == 0 && *s;) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        char *line = strndup(s, n);
        c->line++;
        if (n == 0)
            rc = 0;
        else if (line[0] == '#')
            rc = check_comment(c, line);
        else
            rc = check_sample(c, line);
        free(line);
        s += n + (nl ? 1 : 0);
    }
    for (size_t i = 0; i < c->n_series; i++)
        free(c->series[i]);
    free(c);
    return rc;
}

int prom_sample(const char *text, const char *key, double *out)
{
    size_t k = strlen(key);
    for (const char *s = text; s && *s; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
        if (strncmp(s, key, k) == 0 && s[k] == ' ') {
            *out = strtod(s + k + 1, NULL);
            return 0;
        }
    }
    return -1;
}
