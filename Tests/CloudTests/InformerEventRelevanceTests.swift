@testable import Cloud
import KubeModel
import Testing

/// Which cache changes call for a controller's pass: the filters that keep an edge's status
/// reports and nodes' heartbeats from costing every controller a pass over every object.
@Suite struct InformerEventRelevanceTests {
    private func json(_ text: String) throws -> JSONValue { try JSONValue(parsing: text) }

    @Test func ownedPodsAreRelevantToTheirControllerOnly() throws {
        let owned = try json(#"{"metadata":{"name":"p","ownerReferences":[{"kind":"Job","name":"j","uid":"1","controller":true}]}}"#)
        let loose = try json(#"{"metadata":{"name":"q","ownerReferences":[{"kind":"Job","name":"j","uid":"1"}]}}"#)
        #expect(Informer.Event.added(owned).isControlled(by: "Job"))
        #expect(!Informer.Event.added(owned).isControlled(by: "ReplicaSet"))
        #expect(!Informer.Event.added(loose).isControlled(by: "Job"), "an owner that is not the controller")
        // Orphaned (owner reference removed): still relevant to the controller it left.
        #expect(Informer.Event.updated(old: owned, new: loose).isControlled(by: "Job"))
    }

    @Test func statusOnlyChangesAreNotSentToEdges() throws {
        let pod = try json(#"{"metadata":{"name":"p","resourceVersion":"1"},"spec":{"nodeName":"n"},"status":{"phase":"Pending"}}"#)
        let running = try json(#"{"metadata":{"name":"p","resourceVersion":"2"},"spec":{"nodeName":"n"},"status":{"phase":"Running"}}"#)
        let deleting = try json(#"{"metadata":{"name":"p","resourceVersion":"3","deletionTimestamp":"2026-01-01T00:00:00Z"},"spec":{"nodeName":"n"},"status":{"phase":"Running"}}"#)
        #expect(!Informer.Event.updated(old: pod, new: running).changesMoreThanStatus)
        #expect(Informer.Event.updated(old: running, new: deleting).changesMoreThanStatus)
        #expect(Informer.Event.added(pod).changesMoreThanStatus && Informer.Event.deleted(pod).changesMoreThanStatus)
        let map = try json(#"{"metadata":{"name":"c","resourceVersion":"1"},"data":{"a":"1"}}"#)
        let changed = try json(#"{"metadata":{"name":"c","resourceVersion":"2"},"data":{"a":"2"}}"#)
        #expect(Informer.Event.updated(old: map, new: changed).changesMoreThanStatus, "a ConfigMap's data")
    }

    @Test func heartbeatsDoNotMoveWhereNodesTakePods() throws {
        let node = try json(#"{"metadata":{"name":"n","resourceVersion":"1","labels":{"a":"1"}},"status":{"allocatable":{"cpu":"2"},"conditions":[{"type":"Ready","lastHeartbeatTime":"1"}]}}"#)
        let beat = try json(#"{"metadata":{"name":"n","resourceVersion":"2","labels":{"a":"1"}},"status":{"allocatable":{"cpu":"2"},"conditions":[{"type":"Ready","lastHeartbeatTime":"2"}]}}"#)
        let relabelled = try json(#"{"metadata":{"name":"n","resourceVersion":"3","labels":{"a":"2"}},"status":{"allocatable":{"cpu":"2"}}}"#)
        let tainted = try json(#"{"metadata":{"name":"n","resourceVersion":"4","labels":{"a":"1"}},"spec":{"taints":[{"key":"k","effect":"NoSchedule"}]},"status":{"allocatable":{"cpu":"2"}}}"#)
        let grown = try json(#"{"metadata":{"name":"n","resourceVersion":"5","labels":{"a":"1"}},"status":{"allocatable":{"cpu":"4"}}}"#)
        #expect(!Informer.Event.updated(old: node, new: beat).changesNodePlacement)
        for changed in [relabelled, tainted, grown] { #expect(Informer.Event.updated(old: beat, new: changed).changesNodePlacement) }
    }

    @Test func theSchedulerSeesPendingBoundFinishedAndRelabelledPods() throws {
        func pod(_ node: String?, phase: String, ready: Bool = false, labels: String = "{}") throws -> JSONValue {
            try json(#"{"metadata":{"name":"p","labels":\#(labels)},"spec":{\#(node.map { #""nodeName":"\#($0)""# } ?? "")},"status":{"phase":"\#(phase)","conditions":[{"type":"Ready","status":"\#(ready ? "True" : "False")"}]}}"#)
        }
        let pending = try pod(nil, phase: "Pending")
        let bound = try pod("n", phase: "Pending")
        let running = try pod("n", phase: "Running")
        let ready = try pod("n", phase: "Running", ready: true)
        #expect(Informer.Event.updated(old: pending, new: pending).changesPodPlacement, "still pending")
        #expect(Informer.Event.updated(old: pending, new: bound).changesPodPlacement)
        #expect(Informer.Event.updated(old: bound, new: running).changesPodPlacement, "phase")
        #expect(!Informer.Event.updated(old: running, new: ready).changesPodPlacement, "readiness alone")
        #expect(Informer.Event.updated(old: ready, new: try pod("n", phase: "Succeeded")).changesPodPlacement)
        #expect(Informer.Event.updated(old: ready, new: try pod("n", phase: "Running", ready: true, labels: #"{"a":"b"}"#)).changesPodPlacement)
    }
}
