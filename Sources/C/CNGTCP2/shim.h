#ifndef SWIFT_KUBEEDGE_CNGTCP2_SHIM_H
#define SWIFT_KUBEEDGE_CNGTCP2_SHIM_H
// ngtcp2 0.12 + ngtcp2_crypto_gnutls + GnuTLS. The QUIC issue adds static inline wrappers here for
// the function-like macros Swift cannot import (ngtcp2_conn_client_new, ngtcp2_settings_default, ...).
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

/// The ngtcp2 version string of the library linked at run time.
static inline const char *cngtcp2_runtime_version(void) {
    const ngtcp2_info *info = ngtcp2_version(0);
    return info ? info->version_str : "";
}
#endif
