@testable import Cloud
import KubeModel
import Testing

@Suite struct PodDefaultsTests {
    private func pod(_ resources: [String]) throws -> JSONValue {
        let containers = resources.enumerated().map { #"{"name":"c\#($0.offset)","image":"app:1","resources":\#($0.element)}"# }
        return try JSONValue(parsing: #"{"metadata":{"name":"p"},"spec":{"containers":[\#(containers.joined(separator: ","))]},"status":{"phase":"Running"}}"#)
    }

    @Test func aNewPodIsPendingWithItsQoSClassAndTheUsualDefaults() throws {
        let created = PodDefaults.onCreate(try pod(["{}"]))
        #expect(created["status"] == (try JSONValue(parsing: #"{"phase":"Pending","qosClass":"BestEffort"}"#)), "a client's status is replaced")
        #expect(created[path: ["spec", "restartPolicy"]] == .string("Always") && created[path: ["spec", "terminationGracePeriodSeconds"]] == .number("30"))
        let container = created[path: ["spec", "containers"]]?.arrayValue?.first
        #expect(container?["imagePullPolicy"] == .string("IfNotPresent") && container?["terminationMessagePolicy"] == .string("File"))

        let exact = #"{"limits":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"1","memory":"1Gi"}}"#
        let limitsOnly = #"{"limits":{"cpu":"500m","memory":"64Mi"}}"#
        #expect(PodDefaults.qosClass(of: try pod([exact, limitsOnly])) == "Guaranteed")
        #expect(PodDefaults.qosClass(of: try pod([exact, "{}"])) == "Burstable")
        #expect(PodDefaults.qosClass(of: try pod([#"{"requests":{"cpu":"1"}}"#])) == "Burstable")
        #expect(PodDefaults.qosClass(of: try pod([#"{"limits":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"500m"}}"#])) == "Burstable")

        // Whatever the client set stays; a :latest or untagged image is pulled always.
        var given = try pod(["{}"])
        given.set(.string("Never"), at: ["spec", "restartPolicy"])
        given.set(.array([try JSONValue(parsing: #"{"name":"a","image":"registry:5000/app"}"#)]), at: ["spec", "containers"])
        let kept = PodDefaults.onCreate(given)
        #expect(kept[path: ["spec", "restartPolicy"]] == .string("Never"))
        #expect(kept[path: ["spec", "containers"]]?.arrayValue?.first?["imagePullPolicy"] == .string("Always"))
    }
}
