/* The linearizability search for register models, in C.
 *
 * Why it exists: on small histories (a few hundred ops, the size of every
 * published Knossos and Porcupine history) the Python search spends its time
 * on interpreter overhead, not on search: building entries, calling the
 * model's step, hashing window ints. This module does, for the register
 * models (harness.checker.models.CasRegister and Independent over it), the
 * same two things as the Python code, with the same meanings (a mutex is run as
 * a register of False/True):
 *
 *   encode(...)   what linearizable.prepare does: calls -> per-partition
 *                 entries, with failed ops and indeterminate read-only ops
 *                 dropped; values interned to small ints (dict equality,
 *                 the same as the Python search's state interning).
 *   Search(...)   what wgl.Search does: Wing & Gong / Lowe with a memo of
 *                 (linearized set, state), eager read-only steps, one
 *                 candidate per group of interchangeable indeterminate ops,
 *                 and no blind write right after an unobserved
 *                 indeterminate op. Resumable: run(budget).
 *
 * Anything it does not know exactly how to treat (an unknown f, a cas value
 * that is not a pair, a value that does not hash, an error string that is
 * not a str) makes encode return None: the caller then uses the Python
 * path, whose answer (often a ModelError read as "unknown") is the
 * reference. The Python checker stays the specification; the property
 * tests compare both with a brute-force checker.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { K_READ = 0, K_READ_ANY = 1, K_WRITE = 2, K_CAS = 3, K_CAS_FAIL = 4 };
enum { RUNNING = 0, OK = 1, ILLEGAL = 2 };

typedef struct {
    int64_t op_id, call, ret;
    int32_t kind, a, b, pad;
} Rec;

/* ------------------------------------------------------------------ encode */

typedef struct {
    Rec *recs;
    Py_ssize_t n, cap;
} Part;

static int part_push(Part *p, const Rec *r) {
    if (p->n == p->cap) {
        Py_ssize_t nc = p->cap ? p->cap * 2 : 16;
        Rec *nr = PyMem_Realloc(p->recs, (size_t)nc * sizeof(Rec));
        if (!nr) { PyErr_NoMemory(); return -1; }
        p->recs = nr;
        p->cap = nc;
    }
    p->recs[p->n++] = *r;
    return 0;
}

static PyObject *S_invoke, *S_complete, *S_f, *S_value, *S_type, *S_index, *S_error;
static PyObject *S_describe;

/* Is a frozen value one whose dict equality is exactly `==`? None, bools, ints, strs,
 * floats other than NaN (a NaN is its own dict key but unequal to itself), and tuples and
 * frozensets of those. Other types (a user's class with its own __eq__) go to Python. */
static int plain_value(PyObject *v, int depth) {
    if (v == Py_None || PyBool_Check(v) || PyLong_CheckExact(v) || PyUnicode_CheckExact(v))
        return 1;
    if (PyFloat_CheckExact(v)) return !Py_IS_NAN(PyFloat_AS_DOUBLE(v));
    if (depth > 32) return 0;
    if (PyTuple_CheckExact(v)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(v); i++)
            if (!plain_value(PyTuple_GET_ITEM(v, i), depth + 1)) return 0;
        return 1;
    }
    if (PyFrozenSet_CheckExact(v)) {
        PyObject *it = PyObject_GetIter(v), *item;
        if (!it) { PyErr_Clear(); return 0; }
        int ok = 1;
        while (ok && (item = PyIter_Next(it))) {
            ok = plain_value(item, depth + 1);
            Py_DECREF(item);
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) { PyErr_Clear(); return 0; }
        return ok;
    }
    return 0;
}

/* value -> id in `ids` (dict) / `values` (list); -1 on error or on a value that is not
 * plain (see plain_value): the caller falls back to the Python path either way. */
static long intern_value(PyObject *v, PyObject *ids, PyObject *values, PyObject *freeze) {
    PyObject *key;
    if (v == Py_None || PyLong_CheckExact(v) || PyUnicode_CheckExact(v)) {
        Py_INCREF(v);
        key = v;
    } else {
        key = PyObject_CallOneArg(freeze, v);
        if (!key) return -1;
        if (!plain_value(key, 0)) {
            Py_DECREF(key);
            return -1;
        }
    }
    PyObject *got = PyDict_GetItemWithError(ids, key);
    if (got) {
        long id = PyLong_AsLong(got);
        Py_DECREF(key);
        return id;
    }
    if (PyErr_Occurred()) { Py_DECREF(key); return -1; }
    Py_ssize_t id = PyList_GET_SIZE(values);
    PyObject *idobj = PyLong_FromSsize_t(id);
    if (!idobj || PyDict_SetItem(ids, key, idobj) < 0 || PyList_Append(values, key) < 0) {
        Py_XDECREF(idobj);
        Py_DECREF(key);
        return -1;
    }
    Py_DECREF(idobj);
    Py_DECREF(key);
    return (long)id;
}

static int64_t position(PyObject *pos, PyObject *index) {
    if (pos == Py_None) return PyLong_AsLongLong(index);
    PyObject *r = PyObject_CallOneArg(pos, index);
    if (!r) return -1;
    int64_t p = PyLong_AsLongLong(r);
    Py_DECREF(r);
    return p;
}

static int str_is(PyObject *s, const char *lit) {
    return PyUnicode_Check(s) && PyUnicode_CompareWithASCIIString(s, lit) == 0;
}

/* A pair [a, b] (list or tuple of two) -> borrowed items; 0 if not a pair. */
static int as_pair(PyObject *v, PyObject **a, PyObject **b) {
    if (PyList_CheckExact(v) && PyList_GET_SIZE(v) == 2) {
        *a = PyList_GET_ITEM(v, 0);
        *b = PyList_GET_ITEM(v, 1);
        return 1;
    }
    if (PyTuple_Check(v) && PyTuple_GET_SIZE(v) == 2) {
        *a = PyTuple_GET_ITEM(v, 0);
        *b = PyTuple_GET_ITEM(v, 1);
        return 1;
    }
    return 0;
}

#define FALLBACK() do { fallback = 1; goto done; } while (0)
#define FAIL() do { goto done; } while (0)

static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *calls, *pos, *init, *freeze, *T_OK, *T_INFO, *T_FAIL;
    int partitioned, nil_reads_any, cas, mismatch_observed;
    Py_ssize_t max_part;
    int mutex;
    if (!PyArg_ParseTuple(args, "OOppppOOOOOnp", &calls, &pos, &partitioned, &nil_reads_any,
                          &cas, &mismatch_observed, &init, &freeze, &T_OK, &T_INFO, &T_FAIL,
                          &max_part, &mutex))
        return NULL;
    if (!PyTuple_Check(calls)) {
        PyErr_SetString(PyExc_TypeError, "calls must be a tuple");
        return NULL;
    }
    PyObject *ids = PyDict_New(), *values = PyList_New(0), *keys = PyDict_New();
    PyObject *key_list = PyList_New(0), *result = NULL;
    Part *parts = NULL;
    Py_ssize_t nparts = 0, capparts = 0;
    long n_failed = 0, n_ro = 0;
    int fallback = 0;
    PyObject *inv = NULL, *comp = NULL, *f = NULL, *ivalue = NULL, *cvalue = NULL;
    PyObject *ctype = NULL, *iindex = NULL, *cindex = NULL, *err = NULL, *pkey = NULL;
    if (!ids || !values || !keys || !key_list) FAIL();
    long init_id = intern_value(init, ids, values, freeze);
    if (init_id < 0) FALLBACK();
    /* A mutex is a register of False/True: acquire is cas(False, True), release the
     * reverse (Knossos' mutex; a failed op did not happen, an indeterminate one may). */
    long free_id = -1, held_id = -1;
    if (mutex) {
        free_id = intern_value(Py_False, ids, values, freeze);
        held_id = intern_value(Py_True, ids, values, freeze);
        if (free_id < 0 || held_id < 0) FALLBACK();
    }
    Py_ssize_t ncalls = PyTuple_GET_SIZE(calls);
    for (Py_ssize_t i = 0; i < ncalls; i++) {
        PyObject *call = PyTuple_GET_ITEM(calls, i);
        inv = PyObject_GetAttr(call, S_invoke);
        if (!inv) FALLBACK();
        comp = PyObject_GetAttr(call, S_complete);
        if (!comp) FALLBACK();
        f = PyObject_GetAttr(inv, S_f);
        if (!f || !PyUnicode_Check(f)) FALLBACK();
        ivalue = PyObject_GetAttr(inv, S_value);
        iindex = PyObject_GetAttr(inv, S_index);
        if (!ivalue || !iindex) FALLBACK();
        PyObject *value;  /* borrowed from ivalue or cvalue */
        int indeterminate = 0, failed = 0;
        int64_t ret = -1;
        if (comp == Py_None) {
            value = ivalue;
            indeterminate = 1;
        } else {
            ctype = PyObject_GetAttr(comp, S_type);
            cvalue = PyObject_GetAttr(comp, S_value);
            if (!ctype || !cvalue) FALLBACK();
            if (ctype == T_OK) {
                value = cvalue == Py_None ? ivalue : cvalue;
                cindex = PyObject_GetAttr(comp, S_index);
                if (!cindex) FALLBACK();
                ret = position(pos, cindex);
                if (ret < 0) FALLBACK();
            } else if (ctype == T_INFO) {
                value = ivalue == Py_None ? cvalue : ivalue;
                indeterminate = 1;
            } else if (ctype == T_FAIL) {
                /* dropped unless the model reads the failure as "compare said no" */
                int observed = 0;
                if (mismatch_observed && str_is(f, "cas")) {
                    if (partitioned) {
                        PyObject *a, *b;
                        if (!as_pair(ivalue, &a, &b)) FALLBACK();  /* partition() raises */
                    }
                    err = PyObject_GetAttr(comp, S_error);
                    if (!err) FALLBACK();
                    if (err == Py_None) observed = 0;
                    else if (PyUnicode_CheckExact(err))
                        observed = PyUnicode_CompareWithASCIIString(err, "mismatch") == 0;
                    else FALLBACK();
                    Py_CLEAR(err);
                }
                if (!observed) {
                    n_failed++;
                    goto next;
                }
                value = ivalue;
                failed = 1;
                cindex = PyObject_GetAttr(comp, S_index);
                if (!cindex) FALLBACK();
                ret = position(pos, cindex);
                if (ret < 0) FALLBACK();
            } else {
                FALLBACK();
            }
        }
        Py_ssize_t pi = 0;
        if (partitioned) {
            PyObject *k, *v;
            if (!as_pair(value, &k, &v)) FALLBACK();
            if (k == Py_None || PyLong_CheckExact(k) || PyUnicode_CheckExact(k)) {
                Py_INCREF(k);
                pkey = k;
            } else {
                pkey = PyObject_CallOneArg(freeze, k);
                if (!pkey) FALLBACK();
            }
            value = v;
        }
        Rec r;
        memset(&r, 0, sizeof r);
        if (mutex) {
            r.kind = K_CAS;
            if (str_is(f, "acquire")) {
                r.a = (int32_t)free_id;
                r.b = (int32_t)held_id;
            } else if (str_is(f, "release")) {
                r.a = (int32_t)held_id;
                r.b = (int32_t)free_id;
            } else {
                FALLBACK();
            }
        } else if (str_is(f, "read")) {
            if (indeterminate) {  /* read-only and indeterminate: dropped */
                n_ro++;
                goto next;
            }
            if (value == Py_None && nil_reads_any) {
                r.kind = K_READ_ANY;
            } else {
                r.kind = K_READ;
                long a = intern_value(value, ids, values, freeze);
                if (a < 0) FALLBACK();
                r.a = (int32_t)a;
            }
        } else if (str_is(f, "write")) {
            r.kind = K_WRITE;
            long a = intern_value(value, ids, values, freeze);
            if (a < 0) FALLBACK();
            r.a = (int32_t)a;
        } else if (cas && str_is(f, "cas")) {
            PyObject *pa, *pb;
            if (!as_pair(value, &pa, &pb)) FALLBACK();
            long a = intern_value(pa, ids, values, freeze);
            if (a < 0) FALLBACK();
            long b = intern_value(pb, ids, values, freeze);
            if (b < 0) FALLBACK();
            r.a = (int32_t)a;
            r.b = (int32_t)b;
            if (failed) {
                r.kind = K_CAS_FAIL;
            } else {
                r.kind = K_CAS;
                if (indeterminate && a == b) {  /* read-only (legal only when unchanged) */
                    n_ro++;
                    goto next;
                }
            }
        } else {
            FALLBACK();  /* the model would raise: let the Python path say so */
        }
        if (PyList_GET_SIZE(values) >= INT32_MAX) FALLBACK();
        r.op_id = PyLong_AsLongLong(iindex);
        if (r.op_id == -1 && PyErr_Occurred()) FALLBACK();
        r.call = position(pos, iindex);
        if (r.call < 0) FALLBACK();
        r.ret = indeterminate ? -1 : ret;
        if (partitioned) {
            PyObject *got = PyDict_GetItemWithError(keys, pkey);
            if (got) {
                pi = PyLong_AsSsize_t(got);
            } else {
                if (PyErr_Occurred()) FALLBACK();
                pi = nparts;
                PyObject *io = PyLong_FromSsize_t(pi);
                if (!io || PyDict_SetItem(keys, pkey, io) < 0) { Py_XDECREF(io); FALLBACK(); }
                Py_DECREF(io);
                if (PyList_Append(key_list, pkey) < 0) FALLBACK();
            }
        } else if (nparts == 0) {
            if (PyList_Append(key_list, Py_None) < 0) FAIL();
        }
        if (pi >= nparts) {
            if (nparts == capparts) {
                Py_ssize_t nc = capparts ? capparts * 2 : 8;
                Part *np = PyMem_Realloc(parts, (size_t)nc * sizeof(Part));
                if (!np) { PyErr_NoMemory(); FAIL(); }
                parts = np;
                capparts = nc;
            }
            parts[nparts].recs = NULL;
            parts[nparts].n = parts[nparts].cap = 0;
            nparts++;
        }
        if (parts[pi].n >= max_part) FALLBACK();  /* too long for this search */
        if (part_push(&parts[pi], &r) < 0) FAIL();
    next:
        Py_CLEAR(inv); Py_CLEAR(comp); Py_CLEAR(f); Py_CLEAR(ivalue); Py_CLEAR(cvalue);
        Py_CLEAR(ctype); Py_CLEAR(iindex); Py_CLEAR(cindex); Py_CLEAR(pkey);
    }
    {
        PyObject *blobs = PyList_New(nparts);
        if (!blobs) FAIL();
        for (Py_ssize_t p = 0; p < nparts; p++) {
            PyObject *b = PyBytes_FromStringAndSize((const char *)parts[p].recs,
                                                    parts[p].n * (Py_ssize_t)sizeof(Rec));
            if (!b) { Py_DECREF(blobs); FAIL(); }
            PyList_SET_ITEM(blobs, p, b);
        }
        result = Py_BuildValue("(NOOlll)", blobs, key_list, values, init_id, n_failed, n_ro);
    }
done:
    Py_XDECREF(inv); Py_XDECREF(comp); Py_XDECREF(f); Py_XDECREF(ivalue); Py_XDECREF(cvalue);
    Py_XDECREF(ctype); Py_XDECREF(iindex); Py_XDECREF(cindex); Py_XDECREF(err);
    Py_XDECREF(pkey);
    for (Py_ssize_t p = 0; p < nparts; p++) PyMem_Free(parts[p].recs);
    PyMem_Free(parts);
    Py_XDECREF(ids); Py_XDECREF(values); Py_XDECREF(keys); Py_XDECREF(key_list);
    if (fallback) {
        PyErr_Clear();
        Py_XDECREF(result);
        Py_RETURN_NONE;
    }
    return result;
}

/* ------------------------------------------------------------------ search */

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    int W;                 /* 64-bit words of the linearized set */
    int64_t *op_id;
    int32_t *kind, *a, *b, *prereq;
    uint8_t *ro, *blind, *has_ret, *inL;
    int32_t *nxt, *prv;    /* event list, 2n + 1 slots; head = 2n */
    int32_t head;
    uint64_t *L;
    int32_t s;
    Py_ssize_t remaining;
    int32_t *st_k, *st_s;  /* the stack: op, state before it */
    uint8_t *st_choice;    /* 1: a choice (backtracking point); 0: an eager step */
    Py_ssize_t depth;
    uint64_t *memo;        /* open addressing, stride W + 1; the last word is state + 1 */
    size_t cap, count;
    int32_t e;
    int after_pending;
    int status;
    long long steps;
    Py_ssize_t best_len;
    int32_t *best_prefix, *best_blocked;
    Py_ssize_t n_blocked;
    int32_t best_state;
    int have_best;
    int released;
    size_t n_seen;
    PyObject *model;
    PyObject *values;
} NSearch;

static inline uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t hash_key(const uint64_t *L, int W, int32_t s) {
    uint64_t h = (uint64_t)(uint32_t)s * 0x9E3779B97F4A7C15ULL;
    for (int w = 0; w < W; w++) h = mix(h ^ L[w]) + (uint64_t)w;
    return mix(h);
}

static int memo_grow(NSearch *S) {
    size_t ncap = S->cap ? S->cap * 2 : 64;
    int stride = S->W + 1;
    uint64_t *nm = PyMem_Calloc(ncap * (size_t)stride, sizeof(uint64_t));
    if (!nm) { PyErr_NoMemory(); return -1; }
    for (size_t i = 0; i < S->cap; i++) {
        uint64_t *src = S->memo + i * (size_t)stride;
        if (!src[S->W]) continue;
        uint64_t h = hash_key(src, S->W, (int32_t)(src[S->W] - 1));
        size_t j = (size_t)h & (ncap - 1);
        while (nm[j * (size_t)stride + S->W]) j = (j + 1) & (ncap - 1);
        memcpy(nm + j * (size_t)stride, src, (size_t)stride * sizeof(uint64_t));
    }
    PyMem_Free(S->memo);
    S->memo = nm;
    S->cap = ncap;
    return 0;
}

/* 1 if (L, s) was seen, 0 if it is new (and now recorded), -1 on error. */
static int memo_add(NSearch *S, int32_t s) {
    if ((S->count + 1) * 2 > S->cap && memo_grow(S) < 0) return -1;
    int W = S->W, stride = W + 1;
    uint64_t h = hash_key(S->L, W, s);
    size_t j = (size_t)h & (S->cap - 1);
    uint64_t tag = (uint64_t)(uint32_t)s + 1;
    for (;;) {
        uint64_t *slot = S->memo + j * (size_t)stride;
        if (!slot[W]) {
            memcpy(slot, S->L, (size_t)W * sizeof(uint64_t));
            slot[W] = tag;
            S->count++;
            return 0;
        }
        if (slot[W] == tag && memcmp(slot, S->L, (size_t)W * sizeof(uint64_t)) == 0) return 1;
        j = (j + 1) & (S->cap - 1);
    }
}

static inline int step(const NSearch *S, int32_t k, int32_t s, int32_t *ns) {
    switch (S->kind[k]) {
    case K_READ: *ns = s; return s == S->a[k];
    case K_READ_ANY: *ns = s; return 1;
    case K_WRITE: *ns = S->a[k]; return 1;
    case K_CAS: *ns = S->b[k]; return s == S->a[k];
    case K_CAS_FAIL: *ns = s; return s != S->a[k];
    }
    return 0;
}

static inline void unlink_ev(NSearch *S, int32_t e) {
    int32_t p = S->prv[e], q = S->nxt[e];
    S->nxt[p] = q;
    if (q >= 0) S->prv[q] = p;
}

static inline void relink_ev(NSearch *S, int32_t e) {
    int32_t p = S->prv[e], q = S->nxt[e];
    S->nxt[p] = e;
    if (q >= 0) S->prv[q] = e;
}

static inline void lift(NSearch *S, int32_t k) {
    S->L[k >> 6] |= 1ULL << (k & 63);
    S->inL[k] = 1;
    unlink_ev(S, 2 * k);
    if (S->has_ret[k]) {
        unlink_ev(S, 2 * k + 1);
        S->remaining--;
    }
}

static inline void unlift(NSearch *S, int32_t k) {
    if (S->has_ret[k]) {
        relink_ev(S, 2 * k + 1);
        S->remaining++;
    }
    relink_ev(S, 2 * k);
    S->inL[k] = 0;
    S->L[k >> 6] &= ~(1ULL << (k & 63));
}

static inline void push(NSearch *S, int32_t k, int32_t s, int choice) {
    S->st_k[S->depth] = k;
    S->st_s[S->depth] = s;
    S->st_choice[S->depth] = (uint8_t)choice;
    S->depth++;
}

/* Linearize every legal read-only candidate now; returns how many. */
static Py_ssize_t close_eager(NSearch *S) {
    Py_ssize_t count = 0;
    int32_t e = S->nxt[S->head];
    while (e >= 0 && !(e & 1)) {
        int32_t k = e >> 1, ns;
        if (S->ro[k] && step(S, k, S->s, &ns)) {
            push(S, k, S->s, 0);
            lift(S, k);
            count++;
            e = S->nxt[S->prv[e]];  /* a lifted entry keeps its links */
            continue;
        }
        e = S->nxt[e];
    }
    return count;
}

static void record_best(NSearch *S) {
    if (S->have_best && S->depth <= S->best_len) return;
    S->have_best = 1;
    S->best_len = S->depth;
    for (Py_ssize_t i = 0; i < S->depth; i++) S->best_prefix[i] = S->st_k[i];
    Py_ssize_t nb = 0;
    int32_t e = S->nxt[S->head];
    while (e >= 0) {
        S->best_blocked[nb++] = e >> 1;
        if (e & 1) break;
        e = S->nxt[e];
    }
    S->n_blocked = nb;
    S->best_state = S->s;
}

/* Pop eager steps, then the choice under them; returns the choice's op (state restored). */
static int32_t pop_choice(NSearch *S) {
    for (;;) {
        S->depth--;
        int32_t k = S->st_k[S->depth];
        unlift(S, k);
        S->s = S->st_s[S->depth];
        if (S->st_choice[S->depth]) return k;
    }
}

static int after_pending(const NSearch *S) {
    if (!S->depth) return 0;
    Py_ssize_t t = S->depth - 1;
    return S->st_choice[t] && !S->has_ret[S->st_k[t]];
}

static int run_steps(NSearch *S, long long budget) {
    long long steps = 0;
    int32_t e = S->e;
    int ap = S->after_pending;
    int status = RUNNING;
    while (steps < budget) {
        steps++;
        if (e < 0 || (e & 1)) {  /* a return whose op is not linearized: dead end */
            record_best(S);
            while (S->depth && !S->st_choice[S->depth - 1]) {
                S->depth--;
                unlift(S, S->st_k[S->depth]);
            }
            if (!S->depth) { status = ILLEGAL; break; }
            int32_t k = pop_choice(S);
            ap = after_pending(S);
            e = S->nxt[2 * k];
            continue;
        }
        int32_t k = e >> 1, ns;
        int32_t pre = S->prereq[k];
        if ((pre >= 0 && !S->inL[pre]) || (ap && S->blind[k]) || !step(S, k, S->s, &ns)) {
            e = S->nxt[e];
            continue;
        }
        S->L[k >> 6] |= 1ULL << (k & 63);
        int seen = memo_add(S, ns);
        S->L[k >> 6] &= ~(1ULL << (k & 63));
        if (seen < 0) return -1;
        if (seen) { e = S->nxt[e]; continue; }
        push(S, k, S->s, 1);
        lift(S, k);
        S->s = ns;
        Py_ssize_t count = close_eager(S);
        if (count) {
            seen = memo_add(S, S->s);
            if (seen < 0) return -1;
            if (seen) {  /* this configuration was searched already */
                int32_t kk = pop_choice(S);
                e = S->nxt[2 * kk];
                continue;
            }
        }
        ap = !count && !S->has_ret[k];
        if (S->remaining == 0) { status = OK; break; }
        e = S->nxt[S->head];
    }
    S->e = e;
    S->after_pending = ap;
    S->steps += steps;
    S->status = status;
    return status;
}

static void ns_free_arrays(NSearch *S) {
    PyMem_Free(S->op_id); PyMem_Free(S->kind); PyMem_Free(S->a); PyMem_Free(S->b);
    PyMem_Free(S->prereq); PyMem_Free(S->ro); PyMem_Free(S->blind); PyMem_Free(S->has_ret);
    PyMem_Free(S->inL); PyMem_Free(S->nxt); PyMem_Free(S->prv); PyMem_Free(S->L);
    PyMem_Free(S->st_k); PyMem_Free(S->st_s); PyMem_Free(S->st_choice); PyMem_Free(S->memo);
    PyMem_Free(S->best_prefix); PyMem_Free(S->best_blocked);
    S->op_id = NULL; S->kind = S->a = S->b = S->prereq = NULL;
    S->ro = S->blind = S->has_ret = S->inL = NULL;
    S->nxt = S->prv = NULL; S->L = NULL; S->st_k = S->st_s = NULL; S->st_choice = NULL;
    S->memo = NULL; S->best_prefix = S->best_blocked = NULL;
}

static void ns_dealloc(NSearch *S) {
    ns_free_arrays(S);
    Py_XDECREF(S->model);
    Py_XDECREF(S->values);
    Py_TYPE(S)->tp_free((PyObject *)S);
}

typedef struct { int64_t pos; int32_t ev; } RetEv;

static int cmp_retev(const void *x, const void *y) {
    const RetEv *p = x, *q = y;
    return p->pos < q->pos ? -1 : p->pos > q->pos;
}

/* Search(records: bytes, init_state: int, model, values) */
static int ns_init(NSearch *S, PyObject *args, PyObject *kw) {
    Py_buffer buf;
    int init_state;
    PyObject *model, *values;
    if (!PyArg_ParseTuple(args, "y*iOO", &buf, &init_state, &model, &values)) return -1;
    if (S->n || S->op_id) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_RuntimeError, "Search initialised twice");
        return -1;
    }
    if (buf.len % (Py_ssize_t)sizeof(Rec)) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "records: not a whole number of entries");
        return -1;
    }
    Py_ssize_t n = buf.len / (Py_ssize_t)sizeof(Rec);
    if (n >= (1 << 29)) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "too many ops for the native search");
        return -1;
    }
    const Rec *recs = buf.buf;
    Py_INCREF(model);
    Py_INCREF(values);
    S->model = model;
    S->values = values;
    S->n = n;
    S->W = (int)((n + 63) / 64);
    if (S->W == 0) S->W = 1;
    size_t un = (size_t)(n ? n : 1), m = 2 * (size_t)n + 1;
    S->op_id = PyMem_Malloc(un * sizeof(int64_t));
    S->kind = PyMem_Malloc(un * sizeof(int32_t));
    S->a = PyMem_Malloc(un * sizeof(int32_t));
    S->b = PyMem_Malloc(un * sizeof(int32_t));
    S->prereq = PyMem_Malloc(un * sizeof(int32_t));
    S->ro = PyMem_Calloc(un, 1);
    S->blind = PyMem_Calloc(un, 1);
    S->has_ret = PyMem_Calloc(un, 1);
    S->inL = PyMem_Calloc(un, 1);
    S->nxt = PyMem_Malloc(m * sizeof(int32_t));
    S->prv = PyMem_Malloc(m * sizeof(int32_t));
    S->L = PyMem_Calloc((size_t)S->W, sizeof(uint64_t));
    S->st_k = PyMem_Malloc(un * sizeof(int32_t));
    S->st_s = PyMem_Malloc(un * sizeof(int32_t));
    S->st_choice = PyMem_Malloc(un);
    S->best_prefix = PyMem_Malloc(un * sizeof(int32_t));
    S->best_blocked = PyMem_Malloc((un + 1) * sizeof(int32_t));
    RetEv *rets = PyMem_Malloc(un * sizeof(RetEv));
    int32_t *last = NULL;
    if (!S->op_id || !S->kind || !S->a || !S->b || !S->prereq || !S->ro || !S->blind ||
        !S->has_ret || !S->inL || !S->nxt || !S->prv || !S->L || !S->st_k || !S->st_s ||
        !S->st_choice || !S->best_prefix || !S->best_blocked || !rets) {
        PyMem_Free(rets);
        PyBuffer_Release(&buf);
        PyErr_NoMemory();
        return -1;
    }
    /* Interchangeable indeterminate ops: same kind and values, never returning. One
     * candidate per group: op k only after the previous member is linearized. A small
     * open-addressing table from (kind, a, b) to the group's last member. */
    size_t gcap = 16;
    while (gcap < 2 * un) gcap <<= 1;
    last = PyMem_Malloc(gcap * sizeof(int32_t));
    if (!last) { PyMem_Free(rets); PyBuffer_Release(&buf); PyErr_NoMemory(); return -1; }
    for (size_t i = 0; i < gcap; i++) last[i] = -1;
    Py_ssize_t nr = 0;
    int64_t prev_call = INT64_MIN;
    for (Py_ssize_t k = 0; k < n; k++) {
        const Rec *r = &recs[k];
        if (r->call < prev_call) {
            PyMem_Free(rets); PyMem_Free(last); PyBuffer_Release(&buf);
            PyErr_SetString(PyExc_ValueError, "records must be in call order");
            return -1;
        }
        prev_call = r->call;
        S->op_id[k] = r->op_id;
        S->kind[k] = r->kind;
        S->a[k] = r->a;
        S->b[k] = r->b;
        S->prereq[k] = -1;
        S->ro[k] = r->kind == K_READ || r->kind == K_READ_ANY || r->kind == K_CAS_FAIL ||
                   (r->kind == K_CAS && r->a == r->b);
        S->blind[k] = r->kind == K_WRITE;
        if (r->ret >= 0) {
            S->has_ret[k] = 1;
            rets[nr].pos = r->ret;
            rets[nr].ev = (int32_t)(2 * k + 1);
            nr++;
        } else {
            uint64_t h = mix(((uint64_t)(uint32_t)r->kind << 40) ^
                             ((uint64_t)(uint32_t)r->a << 20) ^ (uint64_t)(uint32_t)r->b);
            size_t j = (size_t)h & (gcap - 1);
            for (;;) {
                int32_t o = last[j];
                if (o < 0) break;
                if (S->kind[o] == r->kind && S->a[o] == r->a && S->b[o] == r->b) {
                    S->prereq[k] = o;
                    break;
                }
                j = (j + 1) & (gcap - 1);
            }
            last[j] = (int32_t)k;
        }
    }
    PyMem_Free(last);
    qsort(rets, (size_t)nr, sizeof(RetEv), cmp_retev);
    /* the event list: calls in order merged with the sorted returns */
    S->head = (int32_t)(2 * n);
    for (size_t i = 0; i < m; i++) S->nxt[i] = S->prv[i] = -1;
    int32_t pe = S->head;
    Py_ssize_t ri = 0;
    for (Py_ssize_t k = 0; k <= n; k++) {
        int64_t c = k < n ? recs[k].call : INT64_MAX;
        while (ri < nr && (k == n || rets[ri].pos < c)) {
            int32_t ev = rets[ri].ev;
            S->nxt[pe] = ev;
            S->prv[ev] = pe;
            pe = ev;
            ri++;
        }
        if (k == n) break;
        int32_t ev = (int32_t)(2 * k);
        S->nxt[pe] = ev;
        S->prv[ev] = pe;
        pe = ev;
    }
    PyMem_Free(rets);
    PyBuffer_Release(&buf);
    S->remaining = nr;
    S->s = init_state;
    S->status = RUNNING;
    if (memo_grow(S) < 0) return -1;
    close_eager(S);
    S->e = S->nxt[S->head];
    S->after_pending = 0;
    if (S->remaining == 0) S->status = OK;
    return 0;
}

static PyObject *ns_run(NSearch *S, PyObject *arg) {
    long long budget = PyLong_AsLongLong(arg);
    if (budget == -1 && PyErr_Occurred()) return NULL;
    if (S->released || S->status != RUNNING) return PyLong_FromLong(S->status);
    int st = run_steps(S, budget);
    if (st < 0) return NULL;
    return PyLong_FromLong(st);
}

static PyObject *ns_release(NSearch *S, PyObject *Py_UNUSED(ignored)) {
    if (!S->released) {
        S->n_seen = S->count;
        S->released = 1;
        PyMem_Free(S->memo);
        S->memo = NULL;
        S->cap = S->count = 0;
        PyMem_Free(S->nxt); PyMem_Free(S->prv);
        S->nxt = S->prv = NULL;
        S->depth = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *ns_memory_bytes(NSearch *S, PyObject *Py_UNUSED(ignored)) {
    if (S->released) return PyLong_FromLong(0);
    /* per op: op_id, kind, a, b, prereq, 4 flags, nxt/prv (two events), stack, best */
    const size_t per_op = 8 + 4 * 4 + 4 + 2 * 2 * 4 + 3 * 4 + 4;
    size_t total = (size_t)S->n * per_op + S->cap * ((size_t)S->W + 1) * 8 + (size_t)S->W * 8;
    return PyLong_FromSize_t(total);
}

static PyObject *ids_list(const NSearch *S, const int32_t *ks, Py_ssize_t n, int dedup_sort) {
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong(S->op_id[ks[i]]);
        if (!v || PyList_Append(out, v) < 0) { Py_XDECREF(v); Py_DECREF(out); return NULL; }
        Py_DECREF(v);
    }
    if (dedup_sort) {
        PyObject *set = PySet_New(out);
        Py_DECREF(out);
        if (!set) return NULL;
        out = PySequence_List(set);
        Py_DECREF(set);
        if (!out || PyList_Sort(out) < 0) { Py_XDECREF(out); return NULL; }
    }
    return out;
}

/* {"linearized_prefix", "could_not_place", "state"} as the Python search gives them. */
static PyObject *ns_counterexample(NSearch *S, PyObject *Py_UNUSED(ignored)) {
    if (!S->have_best) {
        if (S->released) {
            PyErr_SetString(PyExc_RuntimeError, "no counterexample after release");
            return NULL;
        }
        record_best(S);
    }
    PyObject *prefix = ids_list(S, S->best_prefix, S->best_len, 0);
    PyObject *blocked = ids_list(S, S->best_blocked, S->n_blocked, 1);
    PyObject *state = PyList_GetItem(S->values, S->best_state);
    PyObject *desc = state ? PyObject_CallMethodOneArg(S->model, S_describe, state) : NULL;
    PyObject *out = NULL;
    if (prefix && blocked && desc)
        out = Py_BuildValue("{sOsOsO}", "linearized_prefix", prefix, "could_not_place",
                            blocked, "state", desc);
    Py_XDECREF(prefix); Py_XDECREF(blocked); Py_XDECREF(desc);
    return out;
}

static PyObject *ns_linearization(NSearch *S, PyObject *Py_UNUSED(ignored)) {
    return ids_list(S, S->st_k, S->depth, 0);
}

static PyObject *ns_get_states_explored(NSearch *S, void *Py_UNUSED(c)) {
    return PyLong_FromSize_t(S->released ? S->n_seen : S->count);
}

static PyObject *ns_get_status(NSearch *S, void *Py_UNUSED(c)) {
    return PyLong_FromLong(S->status);
}

static PyObject *ns_get_steps(NSearch *S, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(S->steps);
}

static PyObject *ns_get_n(NSearch *S, void *Py_UNUSED(c)) {
    return PyLong_FromSsize_t(S->n);
}

static PyObject *ns_get_zero(NSearch *S, void *Py_UNUSED(c)) {
    return PyLong_FromLong(0);
}

static PyMethodDef ns_methods[] = {
    {"run", (PyCFunction)ns_run, METH_O, "Search for at most budget steps; RUNNING, OK or ILLEGAL."},
    {"release", (PyCFunction)ns_release, METH_NOARGS, "Drop the memo and the event list."},
    {"memory_bytes", (PyCFunction)ns_memory_bytes, METH_NOARGS, "Bytes this search holds."},
    {"counterexample", (PyCFunction)ns_counterexample, METH_NOARGS,
     "The longest linearizable prefix found and what could not come next."},
    {"linearization", (PyCFunction)ns_linearization, METH_NOARGS,
     "The op ids in linearization order (after OK)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ns_getset[] = {
    {"states_explored", (getter)ns_get_states_explored, NULL, "memoized configurations", NULL},
    {"status", (getter)ns_get_status, NULL, "RUNNING, OK or ILLEGAL", NULL},
    {"steps", (getter)ns_get_steps, NULL, "steps taken", NULL},
    {"n", (getter)ns_get_n, NULL, "ops searched", NULL},
    {"dropped_unobserved", (getter)ns_get_zero, NULL, "always 0 here", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject NSearchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "harness.checker._wglnative.Search",
    .tp_basicsize = sizeof(NSearch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A resumable linearizability search of one register partition.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ns_init,
    .tp_dealloc = (destructor)ns_dealloc,
    .tp_methods = ns_methods,
    .tp_getset = ns_getset,
};

static PyMethodDef module_methods[] = {
    {"encode", encode, METH_VARARGS,
     "encode(calls, pos, partitioned, nil_reads_any, cas, mismatch_observed, init, freeze, "
     "OK, INFO, FAIL, max_part, mutex) -> (records per partition, keys, values, init id, failed, "
     "indeterminate read-only) or None when the Python path must decide."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_wglnative",
    "The register search of the linearizability checker, in C.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__wglnative(void) {
    if (PyType_Ready(&NSearchType) < 0) return NULL;
    S_invoke = PyUnicode_InternFromString("invoke");
    S_complete = PyUnicode_InternFromString("complete");
    S_f = PyUnicode_InternFromString("f");
    S_value = PyUnicode_InternFromString("value");
    S_type = PyUnicode_InternFromString("type");
    S_index = PyUnicode_InternFromString("index");
    S_error = PyUnicode_InternFromString("error");
    S_describe = PyUnicode_InternFromString("describe");
    if (!S_invoke || !S_complete || !S_f || !S_value || !S_type || !S_index || !S_error ||
        !S_describe)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&NSearchType);
    if (PyModule_AddObject(m, "Search", (PyObject *)&NSearchType) < 0 ||
        PyModule_AddIntConstant(m, "RUNNING", RUNNING) < 0 ||
        PyModule_AddIntConstant(m, "OK", OK) < 0 ||
        PyModule_AddIntConstant(m, "ILLEGAL", ILLEGAL) < 0 ||
        PyModule_AddIntConstant(m, "RECORD_BYTES", (long)sizeof(Rec)) < 0) {
        Py_DECREF(&NSearchType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
