#ifndef SWIFT_KUBEEDGE_CNGTCP2_SHIM_H
#define SWIFT_KUBEEDGE_CNGTCP2_SHIM_H
// ngtcp2 0.12 + ngtcp2_crypto_gnutls + GnuTLS. ngtcp2 0.12 exposes its main entry points as
// function-like macros over *_versioned functions, which Swift cannot import: the static inline
// functions below are those macros as functions (same names, prefixed with c).
#include <time.h>
#include <stdio.h>
#include <stdarg.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <gnutls/abstract.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

/// The ngtcp2 version string of the library linked at run time.
static inline const char *cngtcp2_runtime_version(void) {
    const ngtcp2_info *info = ngtcp2_version(0);
    return info ? info->version_str : "";
}

static inline void cngtcp2_settings_default(ngtcp2_settings *settings) {
    ngtcp2_settings_default(settings);
}

static inline void cngtcp2_transport_params_default(ngtcp2_transport_params *params) {
    ngtcp2_transport_params_default(params);
}

static inline int cngtcp2_conn_client_new(
    ngtcp2_conn **pconn, const ngtcp2_cid *dcid, const ngtcp2_cid *scid, const ngtcp2_path *path,
    uint32_t version, const ngtcp2_callbacks *callbacks, const ngtcp2_settings *settings,
    const ngtcp2_transport_params *params, void *user_data) {
    return ngtcp2_conn_client_new(pconn, dcid, scid, path, version, callbacks, settings, params, NULL, user_data);
}

static inline int cngtcp2_conn_server_new(
    ngtcp2_conn **pconn, const ngtcp2_cid *dcid, const ngtcp2_cid *scid, const ngtcp2_path *path,
    uint32_t version, const ngtcp2_callbacks *callbacks, const ngtcp2_settings *settings,
    const ngtcp2_transport_params *params, void *user_data) {
    return ngtcp2_conn_server_new(pconn, dcid, scid, path, version, callbacks, settings, params, NULL, user_data);
}

static inline int cngtcp2_conn_read_pkt(
    ngtcp2_conn *conn, const ngtcp2_path *path, const ngtcp2_pkt_info *pi, const uint8_t *pkt,
    size_t pktlen, ngtcp2_tstamp ts) {
    return ngtcp2_conn_read_pkt(conn, path, pi, pkt, pktlen, ts);
}

static inline ngtcp2_ssize cngtcp2_conn_writev_stream(
    ngtcp2_conn *conn, ngtcp2_path *path, ngtcp2_pkt_info *pi, uint8_t *dest, size_t destlen,
    ngtcp2_ssize *pdatalen, uint32_t flags, int64_t stream_id, const ngtcp2_vec *datav,
    size_t datavcnt, ngtcp2_tstamp ts) {
    return ngtcp2_conn_writev_stream(conn, path, pi, dest, destlen, pdatalen, flags, stream_id, datav, datavcnt, ts);
}

static inline ngtcp2_ssize cngtcp2_conn_write_connection_close(
    ngtcp2_conn *conn, ngtcp2_path *path, ngtcp2_pkt_info *pi, uint8_t *dest, size_t destlen,
    const ngtcp2_connection_close_error *ccerr, ngtcp2_tstamp ts) {
    return ngtcp2_conn_write_connection_close(conn, path, pi, dest, destlen, ccerr, ts);
}

static inline void cngtcp2_conn_get_conn_stat(ngtcp2_conn *conn, ngtcp2_conn_stat *cstat) {
    ngtcp2_conn_get_conn_stat(conn, cstat);
}

/// The seconds constant (a shift-free macro, but typed here for Swift).
static inline uint64_t cngtcp2_seconds(void) { return NGTCP2_SECONDS; }

/// A monotonic timestamp in nanoseconds, the clock ngtcp2 timestamps use.
static inline uint64_t cngtcp2_timestamp(void) {
    struct timespec tp;
    clock_gettime(CLOCK_MONOTONIC, &tp);
    return (uint64_t)tp.tv_sec * NGTCP2_SECONDS + (uint64_t)tp.tv_nsec;
}

/// ngtcp2's log callback is variadic, which Swift cannot write: this one prints to stderr.
static inline void cngtcp2_log_to_stderr(void *user_data, const char *format, ...) {
    (void)user_data;
    va_list arguments;
    va_start(arguments, format);
    vfprintf(stderr, format, arguments);
    va_end(arguments);
    fputc('\n', stderr);
}

static inline void cngtcp2_settings_log_to_stderr(ngtcp2_settings *settings) {
    settings->log_printf = cngtcp2_log_to_stderr;
}

static inline void cngtcp2_conn_set_early_remote_transport_params(ngtcp2_conn *conn, const ngtcp2_transport_params *params) {
    ngtcp2_conn_set_early_remote_transport_params(conn, params);
}

/// Frees memory GnuTLS allocated into `datum` (gnutls_free is a macro Swift cannot call).
static inline void cgnutls_free_datum(gnutls_datum_t *datum) {
    gnutls_free(datum->data);
    datum->size = 0;
}
#endif
