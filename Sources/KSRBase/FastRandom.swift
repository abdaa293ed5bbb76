import CKSRSys

/// The kernel's cryptographic randomness (getrandom), drawn 512 bytes at a time per thread:
/// as unpredictable as `SystemRandomNumberGenerator`, without a system call per number. For
/// Via branches, tags and Call-IDs, drawn several times per message.
public struct FastRandom: RandomNumberGenerator {
    public init() {}

    @inline(__always)
    public mutating func next() -> UInt64 { ksr_random64() }
}
