import Foundation

/// A detached thread started before the connection it will run, so that a failure to start
/// it (the process or cgroup is out of threads or memory) is known while the client's socket
/// is still bare and can be refused cleanly. Foundation's `Thread.start()` cannot report
/// that failure: it would leave the connection, its socket and its counts behind.
final class ConnectionThread: @unchecked Sendable {
    private let handedOver = DispatchSemaphore(value: 0)
    private let name: String
    private var work: (() -> Void)?

    private init(name: String) {
        self.name = name
    }

    /// Starts a thread that waits for `run(_:)` or `cancel()`; nil when none can be started.
    static func spawn(name: String, stackSize: Int = 1 << 20) -> ConnectionThread? {
        let thread = ConnectionThread(name: name)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, stackSize)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let context = Unmanaged.passRetained(thread).toOpaque()
        var handle = pthread_t()
        let rc = pthread_create(&handle, &attributes, { context in
            let thread = Unmanaged<ConnectionThread>.fromOpaque(context!).takeRetainedValue()
            Thread.current.name = thread.name
            thread.handedOver.wait()
            let work = thread.work
            thread.work = nil
            work?()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<ConnectionThread>.fromOpaque(context).release()
            return nil
        }
        return thread
    }

    /// Hands the thread its work, which it runs and then ends.
    func run(_ body: @escaping () -> Void) {
        work = body
        handedOver.signal()
    }

    /// Ends the thread without work.
    func cancel() {
        handedOver.signal()
    }
}
