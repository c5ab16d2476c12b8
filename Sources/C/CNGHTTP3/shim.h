#ifndef SWIFT_KUBEEDGE_CNGHTTP3_SHIM_H
#define SWIFT_KUBEEDGE_CNGHTTP3_SHIM_H
#include <nghttp3/nghttp3.h>

/// The nghttp3 version string of the library linked at run time.
static inline const char *cnghttp3_runtime_version(void) {
    const nghttp3_info *info = nghttp3_version(0);
    return info ? info->version_str : "";
}
#endif
