import Foundation

/// The signal that interrupted a streaming command, 0 while none did.
private var receivedSignal: sig_atomic_t = 0

/// Turns SIGINT, SIGTERM and SIGHUP into a flag that backup and restore check between
/// chunks, so an interrupted transfer fails and cleans up like any other failure (no
/// partial archive left under its name, a half-restored home rolled back). A second
/// signal ends the process at once.
enum Interruption {
    static func install() {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { sig in
                receivedSignal = sig
                signal(sig, SIG_DFL)
            }
        }
    }

    /// Throws once a signal arrived.
    static func check() throws {
        let sig = receivedSignal
        if sig != 0 { throw CLIError("interrupted by signal \(sig)") }
    }
}
