// What kubectl and other clients send the embedded API server: JSON bodies (objects, merge and
// strategic merge patches) and label/field selectors in query strings. Every JSON value that
// parses must serialize to text that parses to the same value; patches and selectors must
// refuse or apply, never crash.
import KubeModel

let pod = try! JSONValue(parsing: """
    {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default","labels":{"app":"web"}},
     "spec":{"containers":[{"name":"c","image":"busybox","env":[{"name":"A","value":"1"}]}],"volumes":[{"name":"v","emptyDir":{}}]}}
    """)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKubeJSON(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    if let value = try? JSONValue(parsing: bytes) {
        let text = value.serialized
        guard let again = try? JSONValue(parsing: text), again == value else {
            fatalError("JSON did not survive a round trip: \(text.prefix(200))")
        }
        _ = pod.applyingMergePatch(value)
        _ = StrategicMergePatch.apply(value, to: pod)
    }
    let text = String(decoding: bytes, as: UTF8.self)
    _ = try? LabelSelector(parsing: text)
    _ = try? FieldSelector(parsing: text)
    return 0
}
