import KubeModel
import Testing

/// RFC 6902 JSON patch, with the RFC's own examples and its failures.
struct JSONPatchTests {
    private func apply(_ patch: String, to document: String) throws -> String {
        try JSONPatch(try JSONValue(parsing: patch)).applied(to: try JSONValue(parsing: document)).serialized
    }

    @Test("add, remove, replace, move, copy and test, on members and array positions, with escaped pointers")
    func operations() throws {
        #expect(try apply(#"[{"op":"add","path":"/baz","value":"qux"}]"#, to: #"{"foo":"bar"}"#) == #"{"foo":"bar","baz":"qux"}"#)
        #expect(try apply(#"[{"op":"add","path":"/foo/1","value":"qux"}]"#, to: #"{"foo":["bar","baz"]}"#) == #"{"foo":["bar","qux","baz"]}"#)
        #expect(try apply(#"[{"op":"add","path":"/foo/-","value":"end"}]"#, to: #"{"foo":["bar"]}"#) == #"{"foo":["bar","end"]}"#)
        #expect(try apply(#"[{"op":"remove","path":"/foo/0"}]"#, to: #"{"foo":["bar","baz"]}"#) == #"{"foo":["baz"]}"#)
        #expect(try apply(#"[{"op":"replace","path":"/a~1b","value":2}]"#, to: #"{"a/b":1}"#) == #"{"a/b":2}"#)
        #expect(try apply(#"[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]"#, to: #"{"foo":{"waldo":"fred"},"qux":{}}"#)
                == #"{"foo":{},"qux":{"thud":"fred"}}"#)
        #expect(try apply(#"[{"op":"copy","from":"/a","path":"/b"}]"#, to: #"{"a":[1]}"#) == #"{"a":[1],"b":[1]}"#)
        #expect(try apply(#"[{"op":"test","path":"/m~0n","value":8},{"op":"replace","path":"","value":true}]"#, to: #"{"m~n":8}"#) == "true")
    }

    @Test("a malformed patch and one that does not apply are told apart, and nothing is half applied")
    func failures() throws {
        #expect(throws: JSONPatch.Failure.self) { try JSONPatch(try JSONValue(parsing: #"{"op":"add"}"#)) }
        let unknown = try #require(throws: JSONPatch.Failure.self) { try JSONPatch(try JSONValue(parsing: #"[{"op":"frob","path":"/a"}]"#)) }
        #expect(unknown.isMalformed && unknown.description.contains("frob"))
        let missing = try #require(throws: JSONPatch.Failure.self) { try apply(#"[{"op":"replace","path":"/nope","value":1}]"#, to: "{}") }
        #expect(!missing.isMalformed && missing.description.contains("/nope"))
        let failedTest = try #require(throws: JSONPatch.Failure.self) {
            try apply(#"[{"op":"add","path":"/b","value":1},{"op":"test","path":"/a","value":2}]"#, to: #"{"a":1}"#)
        }
        #expect(failedTest.description.contains("test failed"))
        #expect(throws: JSONPatch.Failure.self) { try apply(#"[{"op":"remove","path":"/a/5"}]"#, to: #"{"a":[1]}"#) }
    }
}
