/* The one loop of the PE checksum that Python cannot do at memory speed (formats/pe.py).
 *
 * The PE checksum is a ones'-complement sum of the file's 16-bit little-endian words,
 * that is a sum modulo 0xFFFF. As 0x10000 = 1 (mod 0xFFFF), so is 2**32: the 32-bit
 * little-endian words of a buffer sum to the same remainder as its 16-bit words, and to
 * the same as int.from_bytes(buffer, "little") % 0xFFFF, which is what pe.py computes in
 * pure Python at 1 to 2.4 ns a byte (the conversion to a Python int is most of it). Here
 * the words are added into a 64-bit accumulator, without the GIL, at about 0.15 ns a byte
 * (0.012 to 0.019 s for 105 MB, against 0.10 to 0.24 s).
 *
 * Optional: pe.py falls back to its pure-Python sum when this module was not built (no C
 * compiler at install time), and tests/unit/test_pe.py checks both give the same values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Reduce before the accumulator could overflow (2**32 words of at most 2**32 - 1 each),
 * and often enough that the tests reach it: every 4 MiB, one division. */
#define FOLD_EVERY ((size_t)1 << 20)

static uint64_t
sum_words(const unsigned char *p, size_t n)
{
    uint64_t total = 0, acc = 0;
    size_t words = n / 4, since_fold = 0;
    for (size_t i = 0; i < words; i++) {
        const unsigned char *w = p + 4 * i;
        /* Little-endian whatever the host's byte order (compilers make this one load). */
        acc += (uint64_t)w[0] | ((uint64_t)w[1] << 8) | ((uint64_t)w[2] << 16)
               | ((uint64_t)w[3] << 24);
        if (++since_fold == FOLD_EVERY) {
            total = (total + acc % 0xFFFF) % 0xFFFF;
            acc = 0;
            since_fold = 0;
        }
    }
    /* The last 1 to 3 bytes are the low bytes of one more little-endian word. */
    uint64_t tail = 0;
    for (size_t i = 4 * words; i < n; i++) {
        tail |= (uint64_t)p[i] << (8 * (i - 4 * words));
    }
    return (total + acc % 0xFFFF + tail) % 0xFFFF;
}

static int
any_nonzero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i]) {
            return 1;
        }
    }
    return 0;
}

PyDoc_STRVAR(sum_mod_doc,
"sum_mod(data, /) -> int\n\n"
"int.from_bytes(data, 'little') modulo 0xFFFF, except that a non-zero value whose\n"
"remainder is 0 gives 0xFFFF (as ones'-complement addition does): 0 only for zeros.");

static PyObject *
sum_mod(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    uint64_t value;
    int nonzero = 0;
    Py_BEGIN_ALLOW_THREADS
    value = sum_words((const unsigned char *)view.buf, (size_t)view.len);
    if (value == 0) {
        nonzero = any_nonzero((const unsigned char *)view.buf, (size_t)view.len);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(value == 0 && nonzero ? 0xFFFF : value);
}

static PyMethodDef methods[] = {
    {"sum_mod", sum_mod, METH_O, sum_mod_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pe_checksum",
    "The PE checksum's word sum at memory speed (see formats/pe.py).", 0, methods,
};

PyMODINIT_FUNC
PyInit__pe_checksum(void)
{
    return PyModule_Create(&module);
}
