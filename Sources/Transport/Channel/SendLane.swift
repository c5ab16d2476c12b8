import NIOCore

/// One queued outgoing message.
struct OutgoingEntry {
    /// Reliable sequence number (0 for best effort).
    var sequence: UInt64
    var delivery: Delivery
    var message: Message
    /// Estimated wire size, for queue and outbox bounds.
    var size: Int
}

/// Sending state of one lane: the queue (sent-unacknowledged entries first, then unsent ones),
/// credit, sequence numbers and bounds.
struct SendLane {
    var nextSequence: UInt64 = 1
    /// Entries in send order. `queue[0 ..< sentCount]` are written, awaiting acknowledgement.
    var queue = CircularBuffer<OutgoingEntry>()
    var sentCount = 0
    /// Bytes the peer allows us to send (may go negative by one frame).
    var credit = 0
    /// The highest sequence whose outbox row is committed.
    var persistedUpTo: UInt64 = 0
    /// The highest sequence the peer acknowledged.
    var acknowledgedUpTo: UInt64 = 0
    /// Bytes of entries not yet written.
    var unsentBytes = 0
    /// Reliable entries not yet acknowledged (and not superseded), and their bytes.
    var reliableCount = 0
    var reliableBytes = 0
    /// Sequences of state messages replaced by a newer one of the same key.
    var superseded = Set<UInt64>()
    /// The newest sequence per state key.
    var latestStateSequence: [String: UInt64] = [:]
    /// Senders waiting for room.
    var spaceWaiters: [UnsafeContinuation<Bool, any Error>] = []

    /// Appends an entry, superseding an older state message of the same key.
    mutating func append(_ entry: OutgoingEntry) {
        if let key = entry.delivery.stateKey {
            if let older = latestStateSequence[key], older > acknowledgedUpTo {
                if let index = queue.firstIndex(where: { $0.sequence == older }) {
                    superseded.insert(older)
                    reliableCount -= 1
                    reliableBytes -= queue[index].size
                }
            }
            latestStateSequence[key] = entry.sequence
        }
        if entry.delivery.isReliable {
            reliableCount += 1
            reliableBytes += entry.size
        }
        unsentBytes += entry.size
        queue.append(entry)
    }

    /// Drops everything acknowledged up to `sequence` and written best-effort entries at the front.
    mutating func acknowledge(upTo sequence: UInt64) {
        if sequence > acknowledgedUpTo { acknowledgedUpTo = sequence }
        trimFront()
    }

    /// Removes written entries at the front that need no retention.
    mutating func trimFront() {
        while sentCount > 0, let first = queue.first {
            if first.sequence != 0, first.sequence > acknowledgedUpTo { break }
            queue.removeFirst()
            sentCount -= 1
            if first.sequence != 0 { release(first) }
        }
    }

    /// Releases the bound accounting of an acknowledged or superseded reliable entry.
    mutating func release(_ entry: OutgoingEntry) {
        if superseded.remove(entry.sequence) != nil { return }
        reliableCount -= 1
        reliableBytes -= entry.size
        if let key = entry.delivery.stateKey, latestStateSequence[key] == entry.sequence {
            latestStateSequence[key] = nil
        }
    }

    /// The connection broke: best-effort entries are dropped, reliable ones will be replayed.
    /// Returns how many best-effort messages were dropped.
    mutating func connectionLost() -> Int {
        var kept = CircularBuffer<OutgoingEntry>(initialCapacity: queue.count)
        var dropped = 0
        unsentBytes = 0
        for entry in queue {
            if entry.sequence == 0 {
                dropped += 1
            } else {
                kept.append(entry)
                unsentBytes += entry.size
            }
        }
        queue = kept
        sentCount = 0
        credit = 0
        return dropped
    }

    /// Removes entries whose outbox write failed.
    mutating func removeFailed(_ sequences: Set<UInt64>) {
        var kept = CircularBuffer<OutgoingEntry>(initialCapacity: queue.count)
        for (index, entry) in queue.enumerated() {
            if index >= sentCount, sequences.contains(entry.sequence) {
                unsentBytes -= entry.size
                release(entry)
            } else {
                kept.append(entry)
            }
        }
        queue = kept
    }

    mutating func takeSpaceWaiters() -> [UnsafeContinuation<Bool, any Error>] {
        defer { spaceWaiters = [] }
        return spaceWaiters
    }
}
