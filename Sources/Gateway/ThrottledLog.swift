import Foundation
import Logging

/// Notices that can come at flood rate (connections dropped or pushed out before
/// authentication): one line at most per `interval`, saying how many were left out, so a
/// flood cannot fill the log. Used from one thread only (the accept loop).
final class ThrottledLog {
    private let logger: Logger
    private let interval: TimeInterval
    private var quietUntil = Date.distantPast
    private var leftOut = 0

    init(logger: Logger, interval: TimeInterval = 1) {
        self.logger = logger
        self.interval = interval
    }

    func note(_ message: String) {
        let now = Date()
        guard now >= quietUntil else {
            leftOut += 1
            return
        }
        let more = leftOut > 0 ? " (and \(leftOut) more such events since the last line)" : ""
        logger.notice("pre-auth limit: \(message)\(more)")
        quietUntil = now.addingTimeInterval(interval)
        leftOut = 0
    }
}
