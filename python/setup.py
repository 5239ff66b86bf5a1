"""The wheel's build step (setuptools, pyproject.toml): builds librealer.so with cargo from the repository
this directory is in, and puts it, stripped, inside the package as realer/librealer.so, beside the licences.

REALER_WHEEL_LIBRARY=/path/to/librealer.so packages a library built elsewhere (a cross build, say) instead of
running cargo; CARGO names the cargo to run (default: cargo from PATH). The version is the crate's, from
Cargo.toml. An sdist cannot build: the Rust sources are outside this directory; build the wheel from the
repository.
"""

import os
import re
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

from setuptools.command.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Files of the repository that go into the package as they are.
SHIPPED = ["LICENSE-MIT", "LICENSE-APACHE", "THIRD-PARTY-NOTICES.md"]


def crate_version():
    with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
        manifest = f.read()
    package = manifest[manifest.index("[package]") :]
    return re.search(r'^version = "([^"]+)"', package, re.MULTILINE).group(1)


def cargo_build():
    """librealer.so as a cdylib alone: built beside the rlib and the staticlib (`cargo build`), the library
    comes out about 150 KB larger. With the `capi` feature (the C library) and for the host triple, as cargo-c
    builds it, so the two share the dependencies' build in target/<triple>/release."""
    cargo = os.environ.get("CARGO", "cargo")
    rustc = os.environ.get("RUSTC", "rustc")
    host = re.search(r"^host: (\S+)$", subprocess.check_output([rustc, "-vV"], text=True), re.MULTILINE).group(1)
    manifest = os.path.join(ROOT, "Cargo.toml")
    subprocess.run(
        [cargo, "rustc", "--release", "--locked", "-p", "realer", "--lib", "--crate-type", "cdylib",
         "--features", "capi", "--target", host, "--manifest-path", manifest],
        check=True,
    )
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, host, "release", "librealer.so")


class build_py_with_library(build_py):
    """build_py, then librealer.so and the licence files into the built package."""

    def run(self):
        super().run()
        package = os.path.join(self.build_lib, "realer")
        library = os.environ.get("REALER_WHEEL_LIBRARY") or cargo_build()
        dest = os.path.join(package, "librealer.so")
        shutil.copyfile(library, dest)
        os.chmod(dest, 0o755)
        # Debug symbols stay out of the wheel (binutils' strip; skipped where there is none).
        strip = shutil.which(os.environ.get("STRIP", "strip"))
        if strip:
            subprocess.run([strip, "--strip-unneeded", dest], check=True)
        for name in SHIPPED:
            path = os.path.join(ROOT, name)
            if os.path.exists(path):
                shutil.copyfile(path, os.path.join(package, name))


class NativeDistribution(Distribution):
    """Carries a native library: built into the platform's tree, and the wheel is not pure."""

    def has_ext_modules(self):
        return True


class platform_wheel(bdist_wheel):
    """A wheel for this platform (it carries a native library) that any Python 3 can use (ctypes, no
    extension module): py3-none-<platform>."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    version=crate_version(),
    distclass=NativeDistribution,
    cmdclass={"build_py": build_py_with_library, "bdist_wheel": platform_wheel},
)
