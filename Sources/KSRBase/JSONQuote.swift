/// Minimal JSON string quoting for log lines and generated files (the JSON-format log, the
/// unsaved-queue JSONL files): `"`, `\` and control characters escaped, the rest as is.
public enum JSON {
    /// `s` as a JSON string, quotes included.
    public static func quote(_ s: String) -> String {
        var out = ""
        append(s, to: &out)
        return out
    }

    /// Appends `s` as a JSON string, quotes included, to `out`.
    public static func append(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0}"..."\u{1F}":
                let digits = Array("0123456789ABCDEF".unicodeScalars)
                out += "\\u00"
                out.unicodeScalars.append(digits[Int(u.value >> 4)])
                out.unicodeScalars.append(digits[Int(u.value & 15)])
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }
}
