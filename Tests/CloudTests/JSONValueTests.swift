import Cloud
import Foundation
import KubeModel
import Testing

/// Kubernetes' API round-trip test data (kubernetes/kubernetes staging/src/k8s.io/api/testdata/HEAD),
/// copied beside this file.
let testdataDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("testdata").path

@Suite struct JSONValueTests {
    @Test(arguments: ["core.v1.ConfigMap.json", "core.v1.Node.json"])
    func kubernetesObjectsRoundTripWithoutLosingAnything(file: String) throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: testdataDirectory + "/" + file))
        let value = try JSONValue(parsing: original)
        let written = value.serializedBytes
        #expect(try JSONValue(parsing: written) == value)
        // An independent reader agrees that the value is unchanged.
        let theirs = try JSONSerialization.jsonObject(with: original) as? NSDictionary
        let ours = try JSONSerialization.jsonObject(with: Data(written)) as? NSDictionary
        #expect(theirs != nil && theirs == ours)
        // Numbers keep their exact text, 64-bit extremes included; key order is kept.
        if file.hasPrefix("core.v1.ConfigMap") {
            #expect(value[path: ["metadata", "generation"]] == .number("8071137005907523419"))
            #expect(value[path: ["metadata", "deletionGracePeriodSeconds"]]?.int64Value == -4955867275792137171)
            #expect(value[path: ["metadata", "creationTimestamp"]] == .null)
            #expect(value.objectValue?.keys == ["kind", "apiVersion", "metadata", "immutable", "data", "binaryData"])
            #expect(String(decoding: written, as: UTF8.self).hasPrefix(#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"2""#))
        }
    }

    @Test func readsEscapesAndWritesWhatReadsBack() throws {
        let value = try JSONValue(parsing: #" {"a":"\"\\\/\b\f\n\r\t\u00e9\ud83c\udf21 ü","b":[1,-0.5e+10,true,false,null,{}],"c":{}} "#)
        #expect(value["a"]?.stringValue == "\"\\/\u{08}\u{0C}\n\r\té🌡 ü")
        #expect(value["b"]?.arrayValue?.count == 6)
        #expect(value["b"]?.arrayValue?[1] == .number("-0.5e+10"))
        #expect(try JSONValue(parsing: value.serialized) == value)
        var edited = value
        edited.set(.string("x"), at: ["c", "d", "e"])
        edited.set(nil, at: ["a"])
        #expect(edited.serialized == #"{"b":[1,-0.5e+10,true,false,null,{}],"c":{"d":{"e":"x"}}}"#)
    }

    @Test(arguments: [
        ("", "unexpected end"), ("{", "expected a string key"), (#"{"a" 1}"#, "expected ':'"), ("[1,]", "unexpected character"),
        ("01", "unexpected data"), ("1.", "fraction needs digits"), ("-", "needs digits"), ("1e", "exponent needs digits"),
        (#""\x""#, "unknown escape"), (#""\ud800""#, "surrogate"), ("\"a\nb\"", "control character"), ("tru", "expected true"),
        (#"{"a":1} x"#, "unexpected data"), ("\"\u{FFFD}\"", ""),
    ])
    func malformedInputIsRefusedWithWhereAndWhy(input: String, reason: String) {
        if reason.isEmpty {
            #expect(throws: Never.self) { try JSONValue(parsing: input) }
            return
        }
        #expect { try JSONValue(parsing: input) } throws: { error in
            (error as? JSONParseError)?.reason.contains(reason) == true
        }
    }

    @Test func limitsHoldForDepthSizeAndInvalidUTF8() {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep) }
        #expect(throws: Never.self) { try JSONValue(parsing: deep, limits: .init(maxDepth: 1000)) }
        #expect(throws: JSONParseError(offset: 0, reason: "12 bytes is more than the limit of 10")) {
            try JSONValue(parsing: #"{"a":"bcde"}"#, limits: .init(maxBytes: 10))
        }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xFF, 0x22]) }
    }

    @Test func mergePatchFollowsRFC7386() throws {
        // The RFC's own examples (section 3 and appendix A).
        let cases: [(String, String, String)] = [
            (#"{"a":"b"}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
            (#"{"a":"b"}"#, #"{"b":"c"}"#, #"{"a":"b","b":"c"}"#),
            (#"{"a":"b"}"#, #"{"a":null}"#, #"{}"#),
            (#"{"a":"b","b":"c"}"#, #"{"a":null}"#, #"{"b":"c"}"#),
            (#"{"a":["b"]}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
            (#"{"a":"c"}"#, #"{"a":["b"]}"#, #"{"a":["b"]}"#),
            (#"{"a":{"b":"c"}}"#, #"{"a":{"b":"d","c":null}}"#, #"{"a":{"b":"d"}}"#),
            (#"{"a":[{"b":"c"}]}"#, #"{"a":[1]}"#, #"{"a":[1]}"#),
            (#"["a","b"]"#, #"["c","d"]"#, #"["c","d"]"#),
            (#"{"a":"b"}"#, #"["c"]"#, #"["c"]"#),
            (#"{"a":"foo"}"#, "null", "null"),
            (#"{"a":"foo"}"#, #""bar""#, #""bar""#),
            (#"{"e":null}"#, #"{"a":1}"#, #"{"e":null,"a":1}"#),
            (#"[1,2]"#, #"{"a":"b","c":null}"#, #"{"a":"b"}"#),
            ("{}", #"{"a":{"bb":{"ccc":null}}}"#, #"{"a":{"bb":{}}}"#),
        ]
        for (target, patch, expected) in cases {
            let result = try JSONValue(parsing: target).applyingMergePatch(try JSONValue(parsing: patch))
            #expect(result == (try JSONValue(parsing: expected)), "\(target) + \(patch)")
        }
    }
}
