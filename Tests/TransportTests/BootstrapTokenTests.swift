import Foundation
import Testing
@testable import Transport

/// Bootstrap tokens: `sha256hex(CA).JWT`, ES256-signed with the CA key, with an expiry.
@Suite struct BootstrapTokenTests {
    @Test func aFreshTokenValidatesAndNamesItsCA() throws {
        let authority = try CertificateAuthority.create()
        let token = try BootstrapToken.make(authority: authority)
        try BootstrapToken.validate(token, authority: authority)
        #expect(try BootstrapToken.caHash(of: token) == authority.certificate.sha256Hex())
        #expect(token.split(separator: ".").count == 4)
    }

    @Test func expiredForgedOrForeignTokensAreRefusedWithTheReason() throws {
        let authority = try CertificateAuthority.create()
        let other = try CertificateAuthority.create()
        let issuedLongAgo = try BootstrapToken.make(authority: authority, validity: .seconds(60), now: Date().addingTimeInterval(-120))
        #expect(throws: IdentityError.invalid("the token expired")) { try BootstrapToken.validate(issuedLongAgo, authority: authority) }
        #expect(throws: IdentityError.invalid("the token names another CA")) {
            try BootstrapToken.validate(try BootstrapToken.make(authority: other), authority: authority)
        }
        // Another CA's JWT behind this CA's fingerprint: the signature gives it away.
        let foreign = try BootstrapToken.make(authority: other)
        let spliced = try authority.certificate.sha256Hex() + foreign.drop(while: { $0 != "." })
        #expect(throws: IdentityError.invalid("the token's signature does not verify")) { try BootstrapToken.validate(spliced, authority: authority) }
        // Claims changed after signing (a later expiry).
        let token = try BootstrapToken.make(authority: authority)
        var parts = token.split(separator: ".").map(String.init)
        parts[2] = BootstrapToken.base64URL(Array(#"{"iat":1,"exp":99999999999}"#.utf8))
        #expect(throws: IdentityError.invalid("the token's signature does not verify")) {
            try BootstrapToken.validate(parts.joined(separator: "."), authority: authority)
        }
        #expect(throws: IdentityError.self) { try BootstrapToken.validate("not-a-token", authority: authority) }
        #expect(throws: IdentityError.self) { try BootstrapToken.validate("", authority: authority) }
    }

    /// The ES256 signature is checked by an independent implementation: openssl, given the
    /// r ‖ s pair re-encoded as DER.
    @Test func opensslVerifiesTheSignature() throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let authority = try CertificateAuthority.create()
        let message = Array("header.claims".utf8)
        let signature = try authority.key.signES256(message)
        #expect(signature.count == 64)
        #expect(authority.certificate.verifiesES256(signature, over: message))
        #expect(!authority.certificate.verifiesES256(signature, over: Array("header.claimz".utf8)))
        func integer(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
            var value = Array(bytes.drop(while: { $0 == 0 }))
            if value.isEmpty || value[0] & 0x80 != 0 { value.insert(0, at: 0) }
            return [0x02, UInt8(value.count)] + value
        }
        let body = integer(signature[..<32]) + integer(signature[32...])
        try Data([0x30, UInt8(body.count)] + body).write(to: URL(fileURLWithPath: "\(directory)/signature.der"))
        try Data(message).write(to: URL(fileURLWithPath: "\(directory)/message"))
        try Data(try authority.certificate.export()).write(to: URL(fileURLWithPath: "\(directory)/ca.pem"))
        let script = "openssl x509 -in ca.pem -pubkey -noout > ca.pub && openssl dgst -sha256 -verify ca.pub -signature signature.der message"
        let (status, text) = try runProcess("/bin/sh", ["-c", script], in: directory)
        #expect(status == 0 && text.contains("Verified OK"), "\(text)")
    }
}
