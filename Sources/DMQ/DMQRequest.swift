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
        let ruri = to.channelURI(channel)
        let host = viaHost.contains(":") && !viaHost.hasPrefix("[") ? "[" + viaHost + "]" : viaHost
        var headers: [SIPHeader] = [
            SIPHeader("Via", "SIP/2.0/" + to.transport.viaToken + " " + host + ":" + String(viaPort)
                + ";branch=" + branch),
            SIPHeader("To", "<" + ruri + ">"),
            SIPHeader("From", "<" + local.channelURI(channel) + ">;tag=" + fromTag),
            SIPHeader("CSeq", "10 KDMQ"),
            SIPHeader("Call-ID", callID),
            SIPHeader("Content-Length", "0"),
        ]
        if !userAgent.isEmpty { headers.append(SIPHeader("User-Agent", userAgent)) }
        headers.append(SIPHeader("Max-Forwards", String(maxForwards)))
        if !contentType.isEmpty { headers.append(SIPHeader("Content-Type", contentType)) }
        return SIPRequestBuilder.request(method: .kdmq, requestURI: ruri, headers: headers, body: Array(body))
    }
}
