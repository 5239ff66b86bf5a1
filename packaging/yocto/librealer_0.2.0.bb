# Yocto/OpenEmbedded recipe for librealer with OE-core's cargo_c class (cargo-c: cargo cbuild/cinstall).
# Copy into your layer (recipes-connectivity/librealer/), point SRC_URI at your copy of the repository, then
# generate the crates list once: bitbake -c update_crates librealer (writes librealer-crates.inc).
SUMMARY = "Client for Realer's HTTPS device API (iot/v1), with a C ABI"
HOMEPAGE = "https://api.therealer.com"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=0b39f2ad22f55416bab70ff1718d5065 \
                    file://LICENSE-APACHE;md5=1836efb2eb779966696f473ee8540542"

SRC_URI = "git://git.example.com/librealer.git;protocol=https;branch=main"
SRCREV = "${AUTOREV}"
S = "${WORKDIR}/git"

inherit cargo_c cargo-update-recipe-crates
require ${BPN}-crates.inc

# The distribution's SQLite instead of the one compiled in (a smaller library; needs sqlite3 3.45.3 or newer).
PACKAGECONFIG ??= ""
# (PACKAGECONFIG's fields are comma-separated: the features are given one --features each.) For the smallest
# library (2.20 MiB on x86-64 with system-sqlite, at about twice the CPU per reading), build with the
# release-small profile: BUILD_MODE = "--profile release-small" in a bbappend.
PACKAGECONFIG[system-sqlite] = "--no-default-features --features system-sqlite,,sqlite3"
# `capi`: the C library (its exports, the allocator that wipes freed memory, the quiet dependencies). cargo-c
# turns it on by itself; it is named here so that every build of the C library says so.
CARGO_BUILD_FLAGS += "--features capi ${PACKAGECONFIG_CONFARGS}"

# cargo_c installs the shared library (librealer.so.0.2.0, its SONAME link librealer.so.0.2, librealer.so),
# realer.h, realer.hpp and realer.pc. Static users also get librealer.a, localized so that its only global
# symbols are realer_* (scripts/localize-static, with the target's binutils).
do_install:append() {
    cargo-cinstall cinstall ${CARGO_BUILD_FLAGS} --destdir ${D} --prefix ${prefix} --libdir ${libdir} \
        --library-type staticlib
    ${S}/scripts/localize-static --tool-prefix ${TARGET_PREFIX} ${D}${libdir}/librealer.a
}

# The bundled Mozilla roots are compiled in: no ca-certificates needed on the device.
