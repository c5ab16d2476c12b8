import Foundation
@testable import Node
import Testing

@Suite struct TwinJSONTests {
    @Test func documentsParseBackWithEveryCharacterIntact() throws {
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{07} unicode é 🌡"
        let property = TwinProperty(
            expected: TwinValue(value: awkward, timestamp: 1), actual: TwinValue(value: "2", timestamp: 2), optional: false, type: "string",
            expectedVersion: TwinVersion(cloud: 3, edge: 4), actualVersion: TwinVersion(cloud: 5, edge: 6))
        var json = TwinJSON()
        TwinDelta(eventID: "e\"1", timestamp: 7, twin: ["na\"me": property, "b": TwinProperty()], delta: ["na\"me": awkward]).write(to: &json)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(json.text.utf8)) as? [String: Any])
        #expect(parsed["event_id"] as? String == "e\"1")
        #expect((parsed["delta"] as? [String: String])?["na\"me"] == awkward)
        // What the cloud and devices decode with Codable reads the same values back.
        var report = TwinJSON()
        DeviceReport(device: "default/d", state: "online", lastOnline: nil, twin: ["na\"me": property]).write(to: &report)
        let decoded = try JSONDecoder().decode(DeviceReport.self, from: Data(report.text.utf8))
        #expect(decoded.twin["na\"me"] == property)
        #expect(decoded.state == "online" && decoded.lastOnline == nil)
    }
}

@Suite struct Base64URLTests {
    @Test func roundTripsTopicsAndMatchesFoundation() {
        for topic in ["", "a", "ab", "abc", "$hw/events/device/dev-1/twin/update", "$hw/events/device/ns/ünïcode/twin/get", "??>>"] {
            let encoded = Base64URL.encode(topic)
            let foundation = Data(topic.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            #expect(encoded == foundation)
            #expect(Base64URL.decode(encoded) == topic)
            #expect(Base64URL.decode(encoded.replacingOccurrences(of: "=", with: "")) == topic)
        }
        #expect(Base64URL.decode("not base64!") == nil)
        #expect(Base64URL.decode("//8=") == nil)  // 0xFF 0xFF is not UTF-8
    }
}
