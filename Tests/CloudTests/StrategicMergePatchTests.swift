import KubeModel
import Cloud
import Testing

@Suite struct StrategicMergePatchTests {
    private func patched(_ original: String, _ patch: String) throws -> JSONValue {
        StrategicMergePatch.apply(try JSONValue(parsing: patch), to: try JSONValue(parsing: original))
    }

    @Test func listsWithAMergeKeyMergeElementByElement() throws {
        let pod = #"{"spec":{"containers":[{"name":"a","image":"a:1","ports":[{"containerPort":80,"protocol":"TCP"}]},{"name":"b","image":"b:1"}]}}"#
        // What kubectl apply sends when b's image changes and a port is added to a.
        let result = try patched(pod, #"{"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"b"}],"containers":[{"name":"b","image":"b:2"},{"name":"a","ports":[{"containerPort":443}]}]}}"#)
        #expect(result == (try JSONValue(parsing: #"{"spec":{"containers":[{"name":"a","image":"a:1","ports":[{"containerPort":80,"protocol":"TCP"},{"containerPort":443}]},{"name":"b","image":"b:2"}]}}"#)))
        // Element deletion, order, and a new element.
        let removed = try patched(pod, #"{"spec":{"$setElementOrder/containers":[{"name":"c"},{"name":"a"}],"containers":[{"name":"b","$patch":"delete"},{"name":"c","image":"c:1"}]}}"#)
        #expect(removed[path: ["spec", "containers"]]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["c", "a"])
        // Service ports merge by port, not containerPort.
        let service = try patched(#"{"spec":{"ports":[{"port":80,"name":"http"},{"port":443,"name":"https"}]}}"#, #"{"spec":{"ports":[{"port":443,"targetPort":8443}]}}"#)
        #expect(service[path: ["spec", "ports"]]?.arrayValue?.last == (try JSONValue(parsing: #"{"port":443,"name":"https","targetPort":8443}"#)))
    }

    @Test func directivesAndListsWithoutAMergeKey() throws {
        // A list without a merge key is replaced; null removes; $patch: replace replaces a map.
        #expect(try patched(#"{"args":["a","b"],"x":1}"#, #"{"args":["c"],"x":null}"#) == (try JSONValue(parsing: #"{"args":["c"]}"#)))
        #expect(try patched(#"{"m":{"a":1,"b":2}}"#, #"{"m":{"$patch":"replace","c":3}}"#) == (try JSONValue(parsing: #"{"m":{"c":3}}"#)))
        #expect(try patched(#"{"s":{"a":1,"b":2,"c":3}}"#, #"{"s":{"$retainKeys":["a","d"],"d":4}}"#) == (try JSONValue(parsing: #"{"s":{"a":1,"d":4}}"#)))
        // Finalizers merge as a set; $deleteFromPrimitiveList removes.
        #expect(try patched(#"{"metadata":{"finalizers":["a","b"]}}"#, #"{"metadata":{"finalizers":["b","c"]}}"#)
            == (try JSONValue(parsing: #"{"metadata":{"finalizers":["a","b","c"]}}"#)))
        #expect(try patched(#"{"metadata":{"finalizers":["a","b"]}}"#, #"{"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}}"#)
            == (try JSONValue(parsing: #"{"metadata":{"finalizers":["b"]}}"#)))
        // A list element replaced wholesale with $patch: replace, and directives never stored.
        #expect(try patched(#"{"spec":{"volumes":[{"name":"v","emptyDir":{}}]}}"#, #"{"spec":{"volumes":[{"name":"w","hostPath":{"path":"/x"}},{"$patch":"replace"}]}}"#)
            == (try JSONValue(parsing: #"{"spec":{"volumes":[{"name":"w","hostPath":{"path":"/x"}}]}}"#)))
    }
}
