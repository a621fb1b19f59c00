#!/bin/sh
# `make static`: one fully static, stripped prenv in build-static/prenv.
#
# The dependencies are compiled from Debian's own source packages (with
# Debian's patch series applied by dpkg-source), with musl, into a prefix
# under build-static/deps/ whose name is a hash of the source versions, the
# compiler and this recipe. A later run finds the prefix and only rebuilds
# prenv itself. Nothing here touches the system's apt configuration: the
# deb-src index lives in build-static/apt/.
#
# Environment: PRENV_STATIC_CC (default musl-gcc; "gcc" gives a static glibc
# build, see docs/static.md), JOBS (default 2).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/build-static
SRC=$OUT/src
APT=$OUT/apt
JOBS=${JOBS:-2}
CC_STATIC=${PRENV_STATIC_CC:-musl-gcc}
# the source packages, in build order (a package comes after what it links)
PKGS="zlib mbedtls http-parser libuv1 libyaml cjson sqlite3 postgresql-15 curl libgit2"

log() { printf 'static: %s\n' "$*"; }
die() { printf 'static: error: %s\n' "$*" >&2; exit 1; }

"$ROOT/scripts/static-deps.sh"
command -v "$CC_STATIC" >/dev/null 2>&1 || die "no compiler '$CC_STATIC'"
mkdir -p "$SRC" "$OUT/logs"

# ---- sources --------------------------------------------------------------

apt_opts() {
    echo "-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$APT/sources.list.d" \
         "-o Dir::State::Lists=$APT/lists -o Dir::Cache=$APT/cache" \
         "-o APT::Sandbox::User=root -o Debug::NoLocking=1"
}

# the deb-src lines of the system's own sources, in a private directory
apt_setup() {
    mkdir -p "$APT/sources.list.d" "$APT/lists/partial" "$APT/cache/archives/partial"
    rm -f "$APT/sources.list.d/"*
    found=0
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        sed 's/^Types:.*/Types: deb-src/' "$f" >"$APT/sources.list.d/$(basename "$f")"
        found=1
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -n 's/^deb[[:space:]]/deb-src /p' "$f" >"$APT/sources.list.d/$(basename "$f").list"
        found=1
    done
    [ $found = 1 ] || die "no apt sources found under /etc/apt"
    # shellcheck disable=SC2046
    apt-get $(apt_opts) update -q >"$OUT/logs/apt-update.log" 2>&1 ||
        die "apt-get update of the deb-src index failed; see $OUT/logs/apt-update.log"
}

# fetch one source package: the newest version the mirror really serves
fetch_one() {
    p=$1
    # shellcheck disable=SC2046
    versions=$(apt-cache $(apt_opts) showsrc "$p" 2>/dev/null |
        sed -n "/^Package: $p\$/,/^\$/s/^Version: //p" | sort -urV)
    [ -n "$versions" ] || die "no source package '$p' in the deb-src index"
    for v in $versions; do
        # shellcheck disable=SC2046
        if (cd "$SRC" && apt-get $(apt_opts) source --download-only -q "$p=$v" \
                >>"$OUT/logs/apt-source.log" 2>&1); then
            echo "$p $v" >>"$SRC/versions.tmp"
            return 0
        fi
        log "$p $v is listed but not served; trying an older version"
    done
    die "could not download source package '$p'; see $OUT/logs/apt-source.log"
}

if [ ! -f "$SRC/versions" ]; then
    log "downloading Debian source packages"
    apt_setup
    rm -f "$SRC/versions.tmp"
    for p in $PKGS; do fetch_one "$p"; done
    mv "$SRC/versions.tmp" "$SRC/versions"
fi

dsc_of() { # the .dsc of package $1, from the versions file
    v=$(sed -n "s/^$1 //p" "$SRC/versions")
    v=${v#*:}
    echo "$SRC/${1}_${v}.dsc"
}

# ---- the cached prefix ----------------------------------------------------

KEY=$( { cat "$SRC/versions"; sed -n '/^# ---- recipes/,/^# ---- prenv/p' "$0";
         "$CC_STATIC" -v 2>&1 | tail -n 1; echo "$CC_STATIC"; } | sha256sum | cut -c1-16)
P=$OUT/deps/$KEY
WORK=$OUT/work/$KEY
KINC=$P/kernel-include

# ---- recipes (from here to the prenv section: part of the cache key) -------

CFLAGS_DEPS="-O2 -ffunction-sections -fdata-sections -fno-plt"
export CC="$CC_STATIC" CFLAGS="$CFLAGS_DEPS" PKG_CONFIG_LIBDIR="$P/lib/pkgconfig"
export PKG_CONFIG_PATH=""

# musl-gcc sees only musl's headers; the kernel's come from the system
kernel_headers() {
    mkdir -p "$KINC"
    multi=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
    for d in linux asm-generic "$multi/asm:asm"; do
        src=${d%%:*}; name=${d##*:}; [ "$name" = "$d" ] && name=$(basename "$d")
        [ -e "$KINC/$name" ] || ln -s "/usr/include/$src" "$KINC/$name"
    done
}

unpack() { # unpack package $1 with Debian's patches into $WORK/$1; cd there
    rm -rf "${WORK:?}/$1"
    mkdir -p "$WORK"
    dpkg-source -q -x "$(dsc_of "$1")" "$WORK/$1" >>"$OUT/logs/$1.log" 2>&1 ||
        die "dpkg-source -x $1 failed; see $OUT/logs/$1.log"
    cd "$WORK/$1"
}

toolchain() { # a CMake toolchain file that finds nothing outside the prefix
    cat >"$WORK/toolchain.cmake" <<TC
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER $CC)
set(CMAKE_C_FLAGS_INIT "$CFLAGS_DEPS -idirafter $KINC")
set(CMAKE_FIND_ROOT_PATH $P)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_BUILD_TYPE Release)
set(BUILD_SHARED_LIBS OFF CACHE BOOL "")
TC
}

cmake_build() { # cmake_build ARGS...: configure, build and install in ./_b
    cmake -S . -B _b -DCMAKE_TOOLCHAIN_FILE="$WORK/toolchain.cmake" -DCMAKE_INSTALL_PREFIX="$P" \
        "$@" >>"$LOG" 2>&1
    cmake --build _b -j "$JOBS" >>"$LOG" 2>&1
    # never install anywhere but the prefix
    grep -q "^$P/" _b/cmake_install.cmake 2>/dev/null || grep -q "\"$P\"" _b/cmake_install.cmake ||
        die "$BUILDING: CMake would not install into $P"
    cmake --install _b --prefix "$P" >>"$LOG" 2>&1
}

build_zlib() {
    ./configure --static --prefix="$P" >>"$LOG" 2>&1
    make -j "$JOBS" libz.a >>"$LOG" 2>&1
    make install >>"$LOG" 2>&1
}

build_mbedtls() {
    # as Debian's package: thread-safe contexts (libgit2 and curl share them)
    scripts/config.py set MBEDTLS_THREADING_C
    scripts/config.py set MBEDTLS_THREADING_PTHREAD
    # mbedTLS 2.28 reads getrandom() only under glibc and otherwise opens
    # /dev/urandom, which an empty root file system lacks: use the system
    # call on any Linux libc (musl has had SYS_getrandom since 1.1.20)
    grep -q 'defined(__linux__) && defined(__GLIBC__)' library/entropy_poll.c ||
        die "mbedtls: entropy_poll.c no longer has the glibc-only getrandom test"
    sed -i 's/(defined(__linux__) && defined(__GLIBC__))/defined(__linux__)/' \
        library/entropy_poll.c
    cmake_build -DENABLE_TESTING=OFF -DENABLE_PROGRAMS=OFF -DUSE_SHARED_MBEDTLS_LIBRARY=OFF \
        -DUSE_STATIC_MBEDTLS_LIBRARY=ON -DMBEDTLS_FATAL_WARNINGS=OFF
}

build_http_parser() {
    make -j "$JOBS" CC="$CC" CFLAGS_FAST_EXTRA="$CFLAGS_DEPS" package >>"$LOG" 2>&1
    install -D -m 644 http_parser.h "$P/include/http_parser.h"
    install -D -m 644 libhttp_parser.a "$P/lib/libhttp_parser.a"
}

build_libuv1() {
    cmake_build -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF -DBUILD_TESTING=OFF
    # the static archive is libuv_a.a; give it the usual name
    ln -sf libuv_a.a "$P/lib/libuv.a"
}

build_libyaml() {
    cmake_build -DBUILD_TESTING=OFF -DINSTALL_CMAKE_DIR=lib/cmake/yaml
}

build_cjson() {
    cmake_build -DENABLE_CJSON_TEST=OFF -DENABLE_CJSON_UTILS=OFF -DBUILD_SHARED_AND_STATIC_LIBS=OFF \
        -DENABLE_CUSTOM_COMPILER_FLAGS=OFF -DENABLE_TARGET_EXPORT=OFF
}

build_sqlite3() {
    # the amalgamation is generated with tclsh, then compiled alone
    ./configure --disable-shared --enable-static --enable-threadsafe --disable-readline \
        --disable-editline --disable-tcl --disable-load-extension --prefix="$P" >>"$LOG" 2>&1
    make -j "$JOBS" libsqlite3.la >>"$LOG" 2>&1
    install -D -m 644 .libs/libsqlite3.a "$P/lib/libsqlite3.a"
    install -D -m 644 sqlite3.h "$P/include/sqlite3.h"
    install -D -m 644 sqlite3ext.h "$P/include/sqlite3ext.h"
}

build_postgresql_15() {
    # libpq alone: no SSL (PostgreSQL's client speaks only OpenSSL), no
    # GSSAPI, no LDAP; the server is not built
    ./configure --prefix="$P" --without-readline --without-zlib --without-icu --without-gssapi \
        --without-ldap --without-llvm --without-perl --without-python \
        --without-tcl --without-pam --without-systemd --disable-nls \
        CFLAGS="$CFLAGS_DEPS -idirafter $KINC" >>"$LOG" 2>&1
    # the headers the backend generates (utils/errcodes.h, ...) come first:
    # src/port's server-side objects include them, and under -j nothing
    # orders their generation before those compile
    make -C src/backend generated-headers >>"$LOG" 2>&1
    for d in src/port src/common src/interfaces/libpq; do
        make -C "$d" -j "$JOBS" >>"$LOG" 2>&1
    done
    make -C src/interfaces/libpq install >>"$LOG" 2>&1
    make -C src/include install >>"$LOG" 2>&1
    install -m 644 src/port/libpgport_shlib.a src/common/libpgcommon_shlib.a "$P/lib/"
}

build_curl() {
    # as Debian's OpenSSL flavour: without the GnuTLS and NSS renaming patches
    patch -s -R -p1 <debian/patches/99_nss.patch >>"$LOG" 2>&1
    patch -s -R -p1 <debian/patches/90_gnutls.patch >>"$LOG" 2>&1
    autoreconf -fi >>"$LOG" 2>&1
    # HTTP and HTTPS over mbedTLS, nothing else; only a CA file, no CA path
    ./configure --prefix="$P" --disable-shared --enable-static --with-mbedtls="$P" \
        --without-openssl --without-gnutls --with-zlib="$P" --enable-threaded-resolver \
        --disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp \
        --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap \
        --disable-smb --disable-smtp --disable-gopher --disable-mqtt --disable-manual \
        --disable-ntlm --disable-ntlm-wb --without-libpsl --without-libidn2 --without-brotli \
        --without-zstd --without-nghttp2 --without-nghttp3 --without-ngtcp2 --without-quiche \
        --without-librtmp --without-gssapi --without-libssh2 --without-libssh \
        --without-ca-path --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt \
        CPPFLAGS="-idirafter $KINC" >>"$LOG" 2>&1
    make -C lib -j "$JOBS" >>"$LOG" 2>&1
    make -C lib install >>"$LOG" 2>&1
    make -C include install >>"$LOG" 2>&1
    install -D -m 755 curl-config "$P/bin/curl-config"
    install -D -m 644 libcurl.pc "$P/lib/pkgconfig/libcurl.pc"
}

build_libgit2() {
    # HTTPS over mbedTLS; no GSSAPI, NTLM or SSH; Debian's +ds tarball has no
    # bundled dependencies, so http-parser and zlib come from the prefix
    cmake_build -DBUILD_TESTS=OFF -DBUILD_CLI=OFF -DBUILD_EXAMPLES=OFF -DUSE_HTTPS=mbedTLS \
        -DUSE_SHA1=CollisionDetection -DUSE_SHA256=HTTPS -DUSE_GSSAPI=OFF -DUSE_NTLMCLIENT=OFF \
        -DUSE_SSH=OFF -DUSE_HTTP_PARSER=system -DREGEX_BACKEND=regcomp -DUSE_BUNDLED_ZLIB=OFF \
        -DUSE_ICONV=OFF -DMBEDTLS_ROOT_DIR="$P" \
        -DCERT_LOCATION=/etc/ssl/certs/ca-certificates.crt
}

BUILDING=
on_exit() {
    rc=$?
    if [ $rc -ne 0 ] && [ -n "$BUILDING" ]; then
        tail -n 30 "$LOG" >&2
        printf 'static: error: building %s failed; see %s\n' "$BUILDING" "$LOG" >&2
    fi
}
trap on_exit EXIT

if [ ! -f "$P/.done" ]; then
    log "building dependencies with $CC_STATIC into build-static/deps/$KEY (once; a few minutes)"
    mkdir -p "$P" "$WORK"
    kernel_headers
    toolchain
    for p in $PKGS; do
        [ -f "$P/.built-$p" ] && continue
        LOG=$OUT/logs/$p.log
        : >"$LOG"
        start=$(date +%s)
        unpack "$p"
        BUILDING=$p
        "build_$(echo "$p" | tr -- '-.' '__')"
        BUILDING=
        cd "$ROOT"
        touch "$P/.built-$p"
        log "  $p $(sed -n "s/^$p //p" "$SRC/versions") ($(( $(date +%s) - start ))s)"
    done
    cp "$SRC/versions" "$P/versions"
    touch "$P/.done"
    rm -rf "$WORK"
    # prefixes of other versions or recipes are of no further use
    for d in "$OUT"/deps/*; do
        [ "$d" = "$P" ] || rm -rf "$d"
    done
fi

# ---- prenv ----------------------------------------------------------------

# musl has no call that returns its version; its loader prints it when run
LIBC=
case "$CC_STATIC" in
*musl*)
    for ld in /lib/ld-musl-*.so.1; do
        [ -x "$ld" ] && LIBC=$("$ld" 2>&1 | sed -n 's/^Version /musl /p')
    done
    if [ -z "$LIBC" ]; then
        v=$(dpkg-query -W -f='${Version}' musl-dev 2>/dev/null || echo unknown)
        LIBC="musl ${v%-*}"
    fi ;;
esac

log "building prenv against build-static/deps/$KEY"
cmake -S "$ROOT" -B "$OUT/cmake" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$CC_STATIC" \
    -DPRENV_STATIC=ON -DPRENV_TESTS=OFF -DPRENV_DEPS_PREFIX="$P" \
    -DPRENV_KERNEL_INCLUDE="$KINC" -DPRENV_LIBC="$LIBC" >"$OUT/logs/prenv-cmake.log" 2>&1 ||
    { tail -n 30 "$OUT/logs/prenv-cmake.log" >&2; die "cmake failed"; }
cmake --build "$OUT/cmake" -j "$JOBS" 2>&1 | tee "$OUT/logs/prenv-build.log" |
    grep -E 'warning|error' >&2 || true
[ -x "$OUT/cmake/prenv" ] || die "the build did not produce prenv; see $OUT/logs/prenv-build.log"
if grep -q 'warning' "$OUT/logs/prenv-build.log"; then
    die "the static build printed warnings; see $OUT/logs/prenv-build.log"
fi
strip -o "$OUT/prenv" "$OUT/cmake/prenv"
log "build-static/prenv: $(wc -c <"$OUT/prenv") bytes, $(file -b "$OUT/prenv" | cut -d, -f1-2)"
