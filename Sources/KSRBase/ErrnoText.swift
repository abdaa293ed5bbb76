#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The C library's text for an errno value, as it stands ("No such file or directory").
public func errorText(_ code: CInt) -> String {
    guard let s = strerror(code) else { return "error \(code)" }
    return String(cString: s)
}

/// The same text with its first letter lowercased, to follow a colon in a message:
/// "address already in use" for EADDRINUSE.
public func errnoText(_ code: CInt) -> String {
    let text = errorText(code)
    guard let first = text.first else { return "error \(code)" }
    return first.lowercased() + text.dropFirst()
}
