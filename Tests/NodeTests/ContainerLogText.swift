import Foundation
import Node

/// What `kubectl logs` would show of the container log at `path` (its CRI records' text);
/// `nil` when there is no such file.
func containerLogText(_ path: String) -> String? {
    (try? String(contentsOfFile: path, encoding: .utf8)).map(ContainerLogRecord.text(of:))
}
