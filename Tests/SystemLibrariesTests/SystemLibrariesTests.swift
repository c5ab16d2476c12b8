import CMosquitto
import CNGHTTP3
import CNGTCP2
import Testing

/// Proves that every system-library target resolves, compiles and links against the Debian packages
/// (SQLite's in StorageTests: only Storage imports it).
@Suite struct SystemLibrariesTests {
    @Test func ngtcp2IsTheDebianZeroTwelveSeries() {
        let version = String(cString: cngtcp2_runtime_version())
        #expect(version.hasPrefix("0.12"), "ngtcp2 runtime version \(version)")
        #expect(gnutls_check_version("3.7.0") != nil)
    }

    @Test func nghttp3Links() {
        let version = String(cString: cnghttp3_runtime_version())
        #expect(version.hasPrefix("0."), "nghttp3 runtime version \(version)")
    }

    @Test func mosquittoInitialises() {
        var major: Int32 = 0, minor: Int32 = 0, revision: Int32 = 0
        _ = mosquitto_lib_version(&major, &minor, &revision)
        #expect(major == 2)
        #expect(mosquitto_lib_init() == MOSQ_ERR_SUCCESS.rawValue)
        mosquitto_lib_cleanup()
    }
}
