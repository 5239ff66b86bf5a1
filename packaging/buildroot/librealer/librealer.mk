################################################################################
#
# librealer: Buildroot package (package/librealer/), with Buildroot's cargo-package infrastructure for the
# toolchain settings and the vendored crates, and cargo-c on the build host for the install
# (cargo install cargo-c --version 0.10.24 --locked).
#
################################################################################

LIBREALER_VERSION = 0.2.0
LIBREALER_SITE = https://git.example.com/librealer.git
LIBREALER_SITE_METHOD = git
LIBREALER_LICENSE = MIT or Apache-2.0
LIBREALER_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE THIRD-PARTY-NOTICES.md
LIBREALER_INSTALL_STAGING = YES

# `capi`: the C library (its exports, the allocator that wipes freed memory, the quiet dependencies). cargo-c
# turns it on by itself; it is named here so that every build of the C library says so.
LIBREALER_FEATURES = --features capi
ifeq ($(BR2_PACKAGE_LIBREALER_SYSTEM_SQLITE),y)
LIBREALER_DEPENDENCIES += sqlite
LIBREALER_FEATURES = --no-default-features --features capi,system-sqlite
endif
# For the smallest library (2.20 MiB on x86-64 with system-sqlite, at about twice the CPU per reading), replace
# --release below with --profile release-small.

# scripts/install = cargo cinstall, then librealer.a localized with the target's binutils.
define LIBREALER_CINSTALL
	cd $(@D) && $(TARGET_MAKE_ENV) $(PKG_CARGO_ENV) TOOL_PREFIX=$(TARGET_CROSS) \
		bash scripts/install --release --frozen --target $(RUSTC_TARGET_NAME) $(LIBREALER_FEATURES) \
		--prefix /usr --libdir /usr/lib --destdir $(1)
endef

define LIBREALER_BUILD_CMDS
	cd $(@D) && $(TARGET_MAKE_ENV) $(PKG_CARGO_ENV) cargo cbuild --release --frozen \
		--target $(RUSTC_TARGET_NAME) $(LIBREALER_FEATURES) --prefix /usr --libdir /usr/lib
endef

define LIBREALER_INSTALL_STAGING_CMDS
	$(call LIBREALER_CINSTALL,$(STAGING_DIR))
endef

# The device needs the shared library only (or nothing, for programs linked with librealer.a).
define LIBREALER_INSTALL_TARGET_CMDS
	$(call LIBREALER_CINSTALL,$(@D)/target-install)
	cp -a $(@D)/target-install/usr/lib/librealer.so.* $(TARGET_DIR)/usr/lib/
endef

$(eval $(cargo-package))
