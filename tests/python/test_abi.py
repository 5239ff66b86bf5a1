"""The binding's ctypes mirror against include/realer.h: every function, struct field and constant of the
header must be declared with the same C types. Pre-1.0 the ABI changes without a version bump, and a struct
that grew in C but not in Python is memory corruption, not an error: this test is what catches it."""

import ctypes
import os
import re
import unittest

import realer
from realer import _native as n

HEADER = os.environ.get(
    "REALER_HEADER",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "include", "realer.h"),
)

# Scalar C types of the header and their ctypes.
SCALARS = {
    "void": None,
    "bool": ctypes.c_bool,
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "int64_t": ctypes.c_int64,
    "uint8_t": ctypes.c_uint8,
    "size_t": ctypes.c_size_t,
    "char": ctypes.c_char,
}


def read_header():
    with open(HEADER, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    # Preprocessor lines go, except the #defines test_constants reads.
    return re.sub(r"^#(?!define)[^\n]*", "", text, flags=re.M)


def integer_typedefs(text):
    return {m.group(2): SCALARS[m.group(1)] for m in re.finditer(r"typedef (\w+) (realer_\w+);", text)}


def ctype_of(decl, typedefs):
    """The ctypes type for a C type such as `const struct realer_client *` or `realer_status`."""
    decl = re.sub(r"\b(const|struct)\b", " ", decl).strip()
    stars = decl.count("*")
    base = decl.replace("*", "").strip()
    if base == "char" and stars >= 1:
        base_type, stars = ctypes.c_char_p, stars - 1
    elif base == "void" and stars >= 1:
        base_type, stars = ctypes.c_void_p, stars - 1
    elif base in SCALARS:
        base_type = SCALARS[base]
    elif base in typedefs:
        base_type = typedefs[base]
    else:
        base_type = getattr(n, base)
    for _ in range(stars):
        base_type = ctypes.POINTER(base_type)
    return base_type


def split_decl(decl):
    """`const char *name` -> (`const char *`, `name`)."""
    m = re.match(r"(.*?)(\w+)\s*$", decl.strip(), flags=re.S)
    return m.group(1), m.group(2)


class HeaderMirror(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isfile(HEADER):
            raise unittest.SkipTest(f"no header at {HEADER}")
        cls.text = read_header()
        cls.typedefs = integer_typedefs(cls.text)

    def test_functions(self):
        body = self.text.split('extern "C" {', 1)[1]
        found = {}
        for m in re.finditer(r"([\w\s\*]+?)\b(realer_\w+)\(([^)]*)\);", body):
            restype, name, params = m.group(1), m.group(2), m.group(3).strip()
            args = [] if params in ("", "void") else [split_decl(p)[0] for p in params.split(",")]
            found[name] = (ctype_of(restype, self.typedefs), [ctype_of(a, self.typedefs) for a in args])
        self.assertGreater(len(found), 30)
        self.assertEqual(sorted(found), sorted(n.PROTOTYPES), "functions of realer.h vs the binding")
        for name, (restype, argtypes) in found.items():
            fn = getattr(n.lib, name)
            with self.subTest(function=name):
                self.assertIs(fn.restype, restype)
                self.assertEqual(fn.argtypes, argtypes)

    def test_structs(self):
        structs = re.findall(r"typedef struct (realer_\w+) \{(.*?)\} \1;", self.text, flags=re.S)
        self.assertGreaterEqual(len(structs), 6)
        for name, body in structs:
            expected = []
            for decl in filter(None, (d.strip() for d in body.split(";"))):
                m = re.match(r"(.*?)(\w+)\[(\w+)\]$", decl, flags=re.S)
                if m:
                    # A length is a number or one of the header's constants.
                    length = int(m.group(3)) if m.group(3).isdigit() else getattr(n, m.group(3))
                    expected.append((m.group(2), ctype_of(m.group(1), self.typedefs) * length))
                else:
                    ctype, field = split_decl(decl)
                    expected.append((field, ctype_of(ctype, self.typedefs)))
            mirror = getattr(n, name)
            with self.subTest(struct=name):
                self.assertEqual([f for f, _ in mirror._fields_], [f for f, _ in expected])
                for (field, want), (_, have) in zip(expected, mirror._fields_):
                    if issubclass(want, ctypes.Array):
                        self.assertTrue(issubclass(have, ctypes.Array), field)
                        self.assertEqual((have._type_, have._length_), (want._type_, want._length_), field)
                    else:
                        self.assertIs(have, want, field)

    def test_constants(self):
        for name, value in re.findall(r"#define (REALER_\w+) (-?\d+)\s*$", self.text, flags=re.M):
            if name.startswith("REALER_VERSION_"):
                continue
            with self.subTest(constant=name):
                self.assertEqual(getattr(n, name), int(value))

    def test_every_status_has_a_python_name(self):
        for name, value in re.findall(r"#define REALER_(OK|ERR_\w+) (\d+)\s*$", self.text, flags=re.M):
            with self.subTest(status=name):
                self.assertEqual(realer.Status(int(value)).name, name.removeprefix("ERR_"))
                self.assertEqual(n.lib.realer_status_str(int(value)).decode(), f"REALER_{name}")

    def test_version_macros_match_the_library(self):
        major = int(re.search(r"#define REALER_VERSION_MAJOR (\d+)", self.text).group(1))
        minor = int(re.search(r"#define REALER_VERSION_MINOR (\d+)", self.text).group(1))
        self.assertEqual(n.ABI_VERSION, (major, minor))
        string = re.search(r'#define REALER_VERSION_STRING "([^"]+)"', self.text).group(1)
        self.assertEqual(realer.version(), string)


if __name__ == "__main__":
    unittest.main()
