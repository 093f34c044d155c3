import Audit
import SSHKeys

extension AuditKey {
    /// The audit trail's view of a registered key: type, SHA256 fingerprint, comment.
    init(_ key: PublicKey) {
        self.init(type: key.type, fingerprint: key.fingerprint, comment: key.comment)
    }
}
