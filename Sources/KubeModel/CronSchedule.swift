import Foundation

/// A CronJob's `schedule` in standard cron form, as Kubernetes parses it (robfig/cron's
/// `ParseStandard`): five fields (minute, hour, day of month, month, day of week) of `*`,
/// numbers, ranges `a-b`, steps `/n`, lists and month or weekday names, or a descriptor
/// (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`). Errors
/// are worded as that parser words them, since kube-apiserver shows them.
public struct CronSchedule: Sendable, Equatable {
    /// The allowed values of each field.
    let minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    /// Whether day of month and day of week were both restricted (then either may match, as in cron).
    let dayRestricted: Bool, weekdayRestricted: Bool

    private struct Field {
        let min: Int, max: Int
        var names: [String: Int] = [:]
    }
    private static let fields = [
        Field(min: 0, max: 59), Field(min: 0, max: 23), Field(min: 1, max: 31),
        Field(min: 1, max: 12, names: ["jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12]),
        Field(min: 0, max: 6, names: ["sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6]),
    ]
    private static let descriptors = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    /// Parses `text`; throws the parser's message.
    public init(parsing text: String) throws(CronScheduleError) {
        var spec = text.trimmingCharacters(in: .whitespaces)
        if spec.hasPrefix("@") {
            guard let expanded = Self.descriptors[spec] else { throw CronScheduleError(message: "unrecognized descriptor: \(spec)") }
            spec = expanded
        }
        let parts = spec.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard parts.count == 5 else {
            throw CronScheduleError(message: "expected exactly 5 fields, found \(parts.count): [\(parts.joined(separator: " "))]")
        }
        var sets: [Set<Int>] = []
        for (part, field) in zip(parts, Self.fields) { sets.append(try Self.values(part, field)) }
        (minutes, hours, days, months, weekdays) = (sets[0], sets[1], sets[2], sets[3], sets[4])
        dayRestricted = !parts[2].hasPrefix("*") && !parts[2].hasPrefix("?")
        weekdayRestricted = !parts[4].hasPrefix("*") && !parts[4].hasPrefix("?")
    }

    private static func values(_ text: String, _ field: Field) throws(CronScheduleError) -> Set<Int> {
        var values = Set<Int>()
        for range in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            let stepParts = range.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard stepParts.count <= 2 else { throw CronScheduleError(message: "too many slashes: \(range)") }
            let bounds = stepParts[0].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard bounds.count <= 2 else { throw CronScheduleError(message: "too many hyphens: \(range)") }
            var (start, end) = (field.min, field.max)
            if bounds[0] != "*" && bounds[0] != "?" {
                start = try number(bounds[0], field)
                end = bounds.count == 2 ? try number(bounds[1], field) : start
            }
            var step = 1
            if stepParts.count == 2 {
                guard let parsed = Int(stepParts[1]) else {
                    throw CronScheduleError(message: "failed to parse int from \(stepParts[1]): strconv.Atoi: parsing \"\(stepParts[1])\": invalid syntax")
                }
                guard parsed > 0 else { throw CronScheduleError(message: "step of range should be a positive number: \(range)") }
                step = parsed
                // `n/step` runs to the field's end.
                if bounds.count == 1, bounds[0] != "*", bounds[0] != "?" { end = field.max }
            }
            guard start >= field.min else { throw CronScheduleError(message: "beginning of range (\(start)) below minimum (\(field.min)): \(range)") }
            guard end <= field.max else { throw CronScheduleError(message: "end of range (\(end)) above maximum (\(field.max)): \(range)") }
            guard start <= end else { throw CronScheduleError(message: "beginning of range (\(start)) beyond end of range (\(end)): \(range)") }
            values.formUnion(stride(from: start, through: end, by: step))
        }
        return values
    }

    private static func number(_ text: String, _ field: Field) throws(CronScheduleError) -> Int {
        if let named = field.names[text.lowercased()] { return named }
        guard let value = Int(text), value >= 0 else {
            throw CronScheduleError(message: "failed to parse int from \(text): strconv.Atoi: parsing \"\(text)\": invalid syntax")
        }
        return value
    }

    /// The first time after `date` (to the minute) the schedule fires in `timeZone` (UTC by
    /// default, as CronJobs without `timeZone` run in the controller's zone); `nil` if none
    /// within five years.
    public func next(after date: Date, timeZone: TimeZone = TimeZone(identifier: "UTC")!) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        var candidate = Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60)
        let limit = date.addingTimeInterval(5 * 366 * 86_400)
        while candidate < limit {
            let parts = calendar.dateComponents([.year, .minute, .hour, .day, .month, .weekday], from: candidate)
            let (minute, hour, day, month, weekday) = (parts.minute!, parts.hour!, parts.day!, parts.month!, parts.weekday! - 1)
            guard months.contains(month) else {
                candidate = calendar.date(byAdding: .month, value: 1, to: calendar.date(from: DateComponents(year: parts.year, month: month))!)!
                continue
            }
            let dayMatches = dayRestricted && weekdayRestricted ? days.contains(day) || weekdays.contains(weekday) : days.contains(day) && weekdays.contains(weekday)
            guard dayMatches else {
                candidate = calendar.date(byAdding: .day, value: 1, to: calendar.startOfDay(for: candidate))!
                continue
            }
            guard hours.contains(hour) else {
                candidate = candidate.addingTimeInterval(TimeInterval(60 - minute) * 60)
                continue
            }
            if minutes.contains(minute) { return candidate }
            candidate = candidate.addingTimeInterval(60)
        }
        return nil
    }
}

/// Why a schedule does not parse, in robfig/cron's words.
public struct CronScheduleError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(message: String) { self.message = message }
}
