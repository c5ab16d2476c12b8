import KubeModel
import Synchronization

/// Stored objects' protobuf messages, by storage key and the revision that last changed the
/// object: the store holds JSON, so a protobuf list would otherwise transcode every item on
/// every request. A list encodes the objects it has not seen at their revision and sends the
/// rest as they were encoded (kube-apiserver keeps an object's serialisation per encoding in
/// its watch cache for the same reason). Bounded by the bytes it holds; the oldest entries go
/// first.
final class ProtobufMessageCache: Sendable {
    private struct Entry {
        var revision: Int64
        var message: [UInt8]
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Insertion order, oldest first from `head`; a key re-encoded since has a newer
        /// entry and its older position is skipped.
        var order: [(key: String, revision: Int64)] = []
        var head = 0
        var bytes = 0
        var hits = 0
        var misses = 0
    }

    private let state = Mutex(State())
    /// The most message bytes held.
    let byteLimit: Int

    init(byteLimit: Int) {
        self.byteLimit = byteLimit
    }

    /// The message of each object, in order: from the cache when it holds the object at its
    /// revision, otherwise made by `encode` (outside the lock) and kept.
    func messages<Failure: Error>(for objects: [ObjectStore.StoredObject],
                                  encode: (ObjectStore.StoredObject) throws(Failure) -> [UInt8]) throws(Failure) -> [[UInt8]] {
        var messages: [[UInt8]?] = state.withLock { state in
            objects.map { object in
                guard let entry = state.entries[object.key], entry.revision == object.modRevision else { return nil }
                return entry.message
            }
        }
        var made: [(key: String, revision: Int64, message: [UInt8])] = []
        for (index, object) in objects.enumerated() where messages[index] == nil {
            let message = try encode(object)
            messages[index] = message
            made.append((object.key, object.modRevision, message))
        }
        let hits = objects.count - made.count
        state.withLock { state in
            state.hits += hits
            state.misses += made.count
            for (key, revision, message) in made where message.count <= byteLimit {
                if let old = state.entries.updateValue(Entry(revision: revision, message: message), forKey: key) { state.bytes -= old.message.count }
                state.bytes += message.count
                state.order.append((key, revision))
            }
            evict(&state)
        }
        return messages.map { $0 ?? [] }
    }

    private func evict(_ state: inout State) {
        while state.bytes > byteLimit, state.head < state.order.count {
            let (key, revision) = state.order[state.head]
            state.head += 1
            if let entry = state.entries[key], entry.revision == revision {
                state.entries[key] = nil
                state.bytes -= entry.message.count
            }
        }
        // Positions before `head` are spent, and so is the position of an entry encoded again
        // since: keep the array near the entries' count.
        if state.order.count > 2 * state.entries.count + 1024 {
            let entries = state.entries
            state.order = state.order[state.head...].filter { entries[$0.key]?.revision == $0.revision }
            state.head = 0
        }
    }

    /// Objects held, message bytes held, and lookups answered from the cache and not.
    var figures: (objects: Int, bytes: Int, hits: Int, misses: Int) {
        state.withLock { ($0.entries.count, $0.bytes, $0.hits, $0.misses) }
    }
}
