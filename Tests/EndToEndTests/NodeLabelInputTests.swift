import Foundation
import Testing
import TestSupport

/// Labels an edge asks for at join (`keadm join --labels`, edgecore's `modules.edged.nodeLabels`)
/// are checked as kubelet checks `--node-labels`: malformed ones are refused at once, with the
/// label and kube's rule named, before anything starts.
struct NodeLabelInputTests {
    @Test func keadmJoinRefusesMalformedLabels() throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let keadm = productDirectory + "/keadm"
        for (labels, complaint) in [
            ("site", "--labels: site is not key=value"),
            ("=a", "--labels: =a is not key=value"),
            ("bad key=a", #"invalid label key "bad key": name part must consist of alphanumeric characters"#),
            ("Example.COM/site=a", #"invalid label key "Example.COM/site": prefix part a lowercase RFC 1123 subdomain"#),
            ("site=a b", #"invalid label value "a b" of site: a valid label must be an empty string or consist of alphanumeric characters"#),
            ("site=" + String(repeating: "a", count: 64), "must be no more than 63 characters"),
        ] {
            let run = try runProcess(keadm, ["join", "--cloudcore-ipport", "127.0.0.1:1", "--token", "t", "--labels", labels, "--data-dir", directory])
            #expect(run.status != 0, "\(labels)")
            #expect(run.output.contains(complaint), "\(labels): \(run.output)")
        }
        // Nothing was started or written for a refused join.
        #expect((try? FileManager.default.contentsOfDirectory(atPath: directory)) == [])
    }

    @Test func edgecoreRefusesMalformedNodeLabels() throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let edgecore = productDirectory + "/edgecore"
        for (labels, complaint) in [
            ("[a, b]", "modules.edged.nodeLabels is not a mapping"),
            ("{\"bad key\": a}", #"modules.edged.nodeLabels: invalid key "bad key""#),
            ("{site: \"a/b\"}", #"modules.edged.nodeLabels: invalid value "a/b" of site"#),
        ] {
            try "modules:\n  edged: {nodeLabels: \(labels)}\n".write(toFile: directory + "/edgecore.yaml", atomically: true, encoding: .utf8)
            let run = try runProcess(edgecore, ["--config", directory + "/edgecore.yaml"])
            #expect(run.status != 0, "\(labels)")
            #expect(run.output.contains(complaint), "\(labels): \(run.output)")
        }
        // Valid labels, the empty value included, pass: edgecore stops at the next check, which
        // this file fails on purpose, instead of starting.
        try "modules:\n  edged: {nodeLabels: {site: a, example.com/tier: \"\"}, nodeStatusUpdateFrequency: 0}\n"
            .write(toFile: directory + "/edgecore.yaml", atomically: true, encoding: .utf8)
        let valid = try runProcess(edgecore, ["--config", directory + "/edgecore.yaml"])
        #expect(valid.status != 0 && valid.output.contains("nodeStatusUpdateFrequency must be at least 1 second") && !valid.output.contains("nodeLabels"),
                "\(valid.output)")
    }
}
