import SIP

/// KDMQ requests as Kamailio's DMQ sends them (spec 3.1).
public enum DMQRequest {
    /// The notification channel's default name (`notification_channel`).
    public static let notificationChannel = "notification_peer"

    /// The bytes of a KDMQ request, in the header order of the captures:
    ///
    /// ```
    /// KDMQ sip:<channel>@<to> SIP/2.0
    /// Via: SIP/2.0/<UDP|TCP|TLS|SCTP of to> <viaHost>:<viaPort>;branch=<branch>
    /// To: <sip:<channel>@<to>>
    /// From: <sip:<channel>@<local>>;tag=<fromTag>
    /// CSeq: 10 KDMQ
    /// Call-ID: <callID>
    /// Content-Length: <n>
    /// User-Agent: <userAgent>          (omitted when empty)
    /// Max-Forwards: <maxForwards>
    /// Content-Type: <contentType>      (omitted when empty)
    /// ```
    ///
    /// then the body. An IPv6 `viaHost` without brackets gets them. Values are written as
    /// given (CR and LF become spaces).
    public static func build(channel: String, to: DMQNodeAddress, from local: DMQNodeAddress,
                             viaHost: String, viaPort: Int, branch: String, callID: String,
                             fromTag: String, maxForwards: Int, contentType: String,
                             body: some Collection<UInt8>, userAgent: String) -> [UInt8] {
        // Written straight into the buffer: this runs for every KDMQ a node sends.
        let ruri = to.channelURI(channel)
        var out: [UInt8] = []
        out.reserveCapacity(256 + 2 * ruri.utf8.count + branch.utf8.count + callID.utf8.count + body.count)
        out.append("KDMQ ")
        out.appendSingleLine(ruri)
        out.append(" SIP/2.0\r\nVia: SIP/2.0/")
        out.appendSingleLine(to.transport.viaToken)
        out.append(" ")
        if viaHost.utf8.contains(UInt8(ascii: ":")) && !viaHost.hasPrefix("[") {
            out.append("[")
            out.appendSingleLine(viaHost)
            out.append("]")
        } else {
            out.appendSingleLine(viaHost)
        }
        out.append(":")
        out.appendDecimal(viaPort)
        out.append(";branch=")
        out.appendSingleLine(branch)
        out.append("\r\nTo: <")
        out.appendSingleLine(ruri)
        out.append(">\r\nFrom: <")
        out.appendSingleLine(local.channelURI(channel))
        out.append(">;tag=")
        out.appendSingleLine(fromTag)
        out.append("\r\nCSeq: 10 KDMQ\r\nCall-ID: ")
        out.appendSingleLine(callID)
        out.append("\r\nContent-Length: ")
        out.appendDecimal(body.count)
        if !userAgent.isEmpty {
            out.append("\r\nUser-Agent: ")
            out.appendSingleLine(userAgent)
        }
        out.append("\r\nMax-Forwards: ")
        out.appendDecimal(maxForwards)
        if !contentType.isEmpty {
            out.append("\r\nContent-Type: ")
            out.appendSingleLine(contentType)
        }
        out.append("\r\n\r\n")
        out.append(contentsOf: body)
        return out
    }
}
