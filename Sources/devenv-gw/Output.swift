import Foundation

/// Text safe to print to a terminal: control characters (escape sequences, carriage
/// returns, and line breaks unless kept) are shown as `\u{…}`.
func displayText(_ text: String, keepingNewlines: Bool = false) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        let isControl = scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value)
            || scalar.properties.generalCategory == .format
        if isControl && !(keepingNewlines && scalar == "\n") {
            out += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}

/// Prints a value as pretty JSON with sorted keys; control characters come out escaped.
func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    // Plain structs of strings and numbers always encode.
    print(String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self))
}

/// Prints rows as left-aligned columns under a header; cells are made safe to display.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows.map { $0.map { displayText($0) } }
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        print(row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  "))
    }
}

/// Dates in listings: ISO 8601 in UTC.
func displayDate(_ date: Date) -> String {
    ISO8601DateFormatter().string(from: date)
}
