import SIP
import Testing

/// Cases adapted from RFC 4475 (SIP Torture Test Messages), plus a few of our own.
/// Messages are written with LF and sent with CRLF unless noted.
enum Torture {
    /// 3.1.1.2 wsinv: odd whitespace, folding, compact forms, case
    static let wsinv = """
        INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
        TO :
         sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
        from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>
          ;
          tag = 98asjd8
        MaX-fOrWaRdS: 0068
        Call-ID: wsinv.ndaksdj@192.0.2.1
        Content-Length   : 150
        cseq: 0009
          INVITE
        Via  : SIP  /   2.0
         /UDP
            192.0.2.2;branch=390skdjuw
        s :
        NewFangledHeader:   newfangled value
         continued newfangled value
        UnknownHeaderWithUnusualValue: ;;,,;;,;
        Content-Type: application/sdp
        Route:
         <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
        v:  SIP  / 2.0  / TCP     spindle.example.com   ;
          branch  =   z9hG4bK9ikj8  ,
         SIP  /    2.0   / UDP  192.168.255.111   ; branch=
         z9hG4bK30239
        m:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =
              newvalue ;
          secondparam ; q = 0.33

        v=0
        o=mhandley 29739 7272939 IN IP4 192.0.2.3
        s=-
        c=IN IP4 192.0.2.4
        t=0 0
        m=audio 49217 RTP/AVP 0 12
        m=video 3227 RTP/AVP 31
        a=rtpmap:31 LPC

        """

    /// 3.1.1.3 intmeth: unusual method, URI and header characters (BEL, NUL, DEL, UTF-8)
    static let intmeth = "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\n"
        + "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
        + "To: \"BEL:\\\u{07} NUL:\\\u{00} DEL:\\\u{7F}\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\n"
        + "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u{440}\u{430}\u{431}\u{43E}\u{442}\u{430}\u{44E}\u{449}\u{438}\u{439}\";tag=_token~1'+`*%!-.\n"
        + "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
        + "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\n"
        + "Max-Forwards: 255\n"
        + "extensionHeader-!.%*+_`'~:\u{FEFF}\u{5927}\u{505C}\u{96FB}\n"
        + "Content-Length: 0\n\n"

    /// 3.1.1.4 esc01: escaped characters
    static let esc01 = """
        INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
        To: sip:%75se%72@example.com
        From: <sip:I%20have%20spaces@example.net>;tag=938
        Max-Forwards: 87
        i: esc01.239409asdfakjkn23onasd0-3234
        CSeq: 234234 INVITE
        Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
        C: application/sdp
        Contact:
          <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
        Content-Length: 5

        v=0

        """

    /// 3.1.1.5 escnull: escaped NUL in URIs
    static let escnull = """
        REGISTER sip:example.com SIP/2.0
        To: sip:null-%00-null@example.com
        From: sip:null-%00-null@example.com;tag=839923423
        Max-Forwards: 70
        Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
        CSeq: 14398234 REGISTER
        Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
        Contact: <sip:%00@host5.example.com>
        Contact: <sip:%00%00@host5.example.com>
        L:0


        """

    /// 3.1.1.8 semiuri + 3.1.1.6 lwsdisp
    static let semiuri = """
        OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
        To: sip:j_user@example.com
        From: caller<sip:caller@example.org>;tag=33242
        Max-Forwards: 3
        Call-ID: semiuri.0ha0isndaksdj
        CSeq: 8 OPTIONS
        Accept: application/sdp, application/pkcs7-mime,
                multipart/mixed, multipart/signed,
                message/sip, message/sipfrag
        Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
        l: 0


        """

    /// 3.1.1.9 transports
    static let transports = """
        OPTIONS sip:user@example.com SIP/2.0
        To: sip:user@example.com
        From: <sip:caller@example.com>;tag=323
        Max-Forwards: 70
        Call-ID:  transports.kijh4akdnaqjkwendsasfdj
        Accept: application/sdp
        CSeq: 60 OPTIONS
        Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
        Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
        Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
        Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
        Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
        l: 0


        """

    /// 3.1.1.11 unreason (UTF-8 reason), 3.1.1.12 noreason
    static let unreason = "SIP/2.0 200 = 2**3 * 5**2 \u{43D}\u{43E} \u{441}\u{442}\u{43E} \u{434}\u{435}\u{432}\u{44F}\u{43D}\u{43E}\u{441}\u{442}\u{43E} \u{434}\u{435}\u{432}\u{44F}\u{442}\u{44C}\nVia: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\nCall-ID: unreason.1234ksdfak3j2erwedfsASdf\nCSeq: 35 INVITE\nFrom: sip:user@example.com;tag=11141343\nTo: sip:user@example.edu;tag=2229\nContent-Length: 0\n\n"
    static let noreason = "SIP/2.0 100 \nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\nCall-ID: noreason.asndj203insdf99223ndf\nCSeq: 35 INVITE\nFrom: <sip:user@example.com>;tag=39ansfi3\nTo: <sip:user@example.edu>;tag=902jndnke3\nContent-Length: 0\n\n"

    /// 3.1.2.? badvers: a version we do not support still parses (the core replies 505)
    static let badvers = "OPTIONS sip:t.watson@example.org SIP/7.0\nVia:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\nMax-Forwards:     70\nFrom:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\nTo:      T. Watson <sip:t.watson@example.org>\nCall-ID: badvers.31417@c.example.com\nCSeq:    1 OPTIONS\nl: 0\n\n"

    static let all: [(name: String, text: String)] = [
        ("wsinv", wsinv), ("intmeth", intmeth), ("esc01", esc01), ("escnull", escnull),
        ("semiuri", semiuri), ("transports", transports), ("unreason", unreason),
        ("noreason", noreason), ("badvers", badvers), ("longreq", longreq),
    ]

    /// 3.1.1.7 longreq: long values everywhere
    static let longreq: String = {
        let long = String(repeating: "longvalue", count: 60)
        var s = "INVITE sip:user@example.com SIP/2.0\n"
        s += "To: \"I have a user name of \(long) extreme proportion\"<sip:user@example.com:6000;unknownparam1=very\(long);unknownparam2=\(long)>;tag=\(long)\n"
        s += "From: sip:amazinglylongcallername\(long)@example.net;tag=12982\(long)424;unknownheaderparam=\(long)\n"
        s += "Call-ID: longreq.one\(long)really\(long)longcallid\n"
        s += "CSeq: 3882340 INVITE\n"
        s += "Unknown-\(long)-Header: unknown-\(long)-value; unknown-\(long)-parameter-name = unknown-\(long)-parameter-value\n"
        for i in 0..<40 { s += "Via: SIP/2.0/TCP sip\(i).example.com:5060;branch=z9hG4bK\(long)\(i)\n" }
        s += "Via: " + (0..<20).map { "SIP/2.0/UDP p\($0).example.com;branch=z9hG4bKp\($0)" }.joined(separator: ", ") + "\n"
        s += "Max-Forwards: 70\n"
        s += "Contact: <sip:amazinglylongcallername\(long)@host5.example.net>\n"
        s += "Content-Length: 0\n\n"
        return s
    }()
}

@Suite struct TortureTests {
    @Test func wsinv() throws {
        let m = try #require(parse(Torture.wsinv))
        #expect(m.method == .invite)
        #expect(m.parsedRequestURI?.parameter(named: "unknownparam") == SIPParameter("unknownparam"))
        let to = try #require(m.to)
        #expect(to.uri.description == "sip:vivekg@chair-dnrc.example.com")
        #expect(to.tag == "1918181833n")
        #expect(!to.usesAngleBrackets)
        let from = try #require(m.from)
        #expect(from.displayName == #"J Rosenberg \""#)
        #expect(from.tag == "98asjd8")
        #expect(m.maxForwards == 68)
        #expect(m.callID == "wsinv.ndaksdj@192.0.2.1")
        #expect(m.contentLength == 150)
        #expect(m.body.count == 150)
        #expect(m.bodyText.hasPrefix("v=0\r\no=mhandley"))
        #expect(m.cseq == SIPCSeq(number: 9, method: .invite))
        #expect(m.header(named: "Subject") == "")
        #expect(m.header(named: "newfangledheader") == "newfangled value continued newfangled value")
        #expect(m.header(named: "UnknownHeaderWithUnusualValue") == ";;,,;;,;")
        #expect(m.nameAddrs(.route).first?.uri.parameter(named: "unknown-no-value") != nil)
        let vias = m.vias
        #expect(vias.map(\.host) == ["192.0.2.2", "spindle.example.com", "192.168.255.111"])
        #expect(vias.map(\.transport) == ["UDP", "TCP", "UDP"])
        #expect(vias.map(\.branch) == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"])
        let contact = try #require(m.nameAddrs(.contact).first)
        #expect(contact.displayName == #"Quoted string """#)
        #expect(contact.parameter(named: "newparam")?.value == "newvalue")
        #expect(contact.parameter(named: "secondparam") == SIPParameter("secondparam"))
        #expect(contact.parameter(named: "q")?.value == "0.33")
        #expect(m.canFormReply)
        let reply = try SIPMessage(SIPResponseBuilder.reply(to: m, status: 200, reason: "OK",
                                                            source: ("192.0.2.2", 5060), toTag: "x"))
        #expect(reply.to?.tag == "1918181833n")
        #expect(reply.vias == vias)
        #expect(reply.cseq == m.cseq)
    }

    @Test func intmeth() throws {
        let m = try #require(parse(Torture.intmeth))
        let method = "!interesting-Method0123456789_*+`.%indeed'~"
        #expect(m.method == .other(method))
        #expect(m.cseq?.method == .other(method))
        #expect(m.cseq?.number == 139122385)
        let ruri = try #require(m.parsedRequestURI)
        #expect(ruri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        #expect(ruri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        #expect(ruri.host == "example.com")
        #expect(m.via?.branch == "z9hG4bK-.!%66*_+`'~")
        let to = try #require(m.to)
        #expect(to.displayName == "BEL:\u{07} NUL:\u{00} DEL:\u{7F}")
        #expect(to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        let from = try #require(m.from)
        #expect(from.displayName == "token1~` token2'+_ token3*%!.-")
        #expect(from.tag == "_token~1'+`*%!-.")
        #expect(from.parameter(named: "fromParam''~+*_!.-%")?.unquotedValue == "\u{440}\u{430}\u{431}\u{43E}\u{442}\u{430}\u{44E}\u{449}\u{438}\u{439}")
        #expect(m.callID == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
        #expect(m.header(named: "extensionHeader-!.%*+_`'~") == "\u{FEFF}\u{5927}\u{505C}\u{96FB}")
        #expect(m.maxForwards == 255)
        #expect(m.canFormReply)
    }

    @Test func escapes() throws {
        let m = try #require(parse(Torture.esc01))
        let ruri = try #require(m.parsedRequestURI)
        #expect(SIPURI.percentDecoded(ruri.user ?? "") == "sips:user@example.com")
        #expect(m.to.map { SIPURI.percentDecoded($0.uri.user ?? "") } == "user")
        #expect(m.from.map { SIPURI.percentDecoded($0.uri.user ?? "") } == "I have spaces")
        #expect(m.callID == "esc01.239409asdfakjkn23onasd0-3234")
        #expect(m.contentType == "application/sdp")
        let contact = try #require(m.nameAddrs(.contact).first)
        #expect(contact.uri.parameters == [SIPParameter("%6C%72"), SIPParameter("n%61me", "v%61lue%25%34%31")])
        #expect(SIPURI.percentDecoded("v%61lue%25%34%31") == "value%41")
        let null = try #require(parse(Torture.escnull))
        #expect(null.method == .register)
        #expect(null.contentLength == 0)
        #expect(null.from?.tag == "839923423")
        #expect(null.from?.uri.user == "null-%00-null")
        #expect(null.nameAddrs(.contact).count == 2)
    }

    @Test func semicolonsInUserAndDisplayNames() throws {
        let m = try #require(parse(Torture.semiuri))
        let ruri = try #require(m.parsedRequestURI)
        #expect(ruri.user == "user;par=u%40example.net")
        #expect(ruri.host == "example.com")
        #expect(ruri.parameters.isEmpty)
        #expect(m.from?.displayName == "caller")
        #expect(m.from?.tag == "33242")
        #expect(m.headers(named: "Accept") == ["application/sdp", "application/pkcs7-mime", "multipart/mixed",
                                               "multipart/signed", "message/sip", "message/sipfrag"])
    }

    @Test func transports() throws {
        let m = try #require(parse(Torture.transports))
        #expect(m.vias.map(\.transport) == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"])
        #expect(m.callID == "transports.kijh4akdnaqjkwendsasfdj")
    }

    @Test func reasonPhrases() throws {
        let u = try #require(parse(Torture.unreason))
        #expect(u.statusCode == 200)
        #expect(u.reasonPhrase?.hasPrefix("= 2**3 * 5**2 \u{43D}\u{43E}") == true)
        let n = try #require(parse(Torture.noreason))
        #expect(n.statusCode == 100)
        #expect(n.reasonPhrase == "")
    }

    @Test func unsupportedVersionStillParses() throws {
        let m = try #require(parse(Torture.badvers))
        #expect(m.version == "SIP/7.0")
        #expect(m.via?.protocolVersion == "7.0")
        #expect(m.from?.displayName == "A. Bell")
        #expect(m.canFormReply)
        let reply = try SIPMessage(SIPResponseBuilder.reply(to: m, status: 505, reason: "Version Not Supported",
                                                            source: ("192.0.2.5", 5060), toTag: "v"))
        #expect(reply.version == "SIP/2.0")
    }

    @Test func longValues() throws {
        let m = try #require(parse(Torture.longreq))
        #expect(m.vias.count == 60)
        #expect(m.vias.last?.branch == "z9hG4bKp19")
        #expect(m.to?.displayName?.count ?? 0 > 500)
        #expect(m.to?.uri.port == 6000)
        #expect(m.from?.tag?.count ?? 0 > 500)
        #expect(m.callID?.count ?? 0 > 1000)
        #expect(m.canFormReply)
        let reply = try SIPMessage(SIPResponseBuilder.reply(to: m, status: 200, reason: "OK",
                                                            source: ("192.0.2.5", 5060), toTag: "v"))
        #expect(reply.vias.count == 60)
    }

    @Test func invalidMessages() {
        let base = "INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw\nMax-Forwards: 70\nFrom: <sip:caller@example.net>;tag=134161461246\nTo: <sip:user@example.com>\nCall-ID: x.2lkjqwerihnewljc\nCSeq: 8 INVITE\n"
        // 3.1.2.? clerr: Content-Length larger than the body
        #expect(parseError(crlf(base + "Content-Length: 9999\n\nv=0\n"))?.code == .truncatedBody)
        #expect(parseError(crlf(base + "Content-Length: 9999\n\nv=0\n"))?.canReplyBadRequest == true)
        // ncl: negative Content-Length
        #expect(parseError(crlf(base + "Content-Length: -999\n\n"))?.code == .invalidContentLength)
        // scalar02: huge Content-Length
        #expect(parseError(crlf(base + "Content-Length: 99999999999999999999999\n\n"))?.code == .invalidContentLength)
        // mcl01: several different Content-Length values
        #expect(parseError(crlf(base + "Content-Length: 0\nContent-Length: 2\nl: 3\n\nabc"))?.code == .conflictingContentLength)
        // scalar02: out-of-range numbers in header values do not parse; the message does
        let scalar = parse("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP host1.example.com:99999;branch=z9hG4bK1\nMax-Forwards: 300000000000\nCSeq: 36893488147419103232 OPTIONS\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: s\n\n")
        #expect(scalar != nil)
        #expect(scalar?.via == nil)
        #expect(scalar?.cseq == nil)
        #expect(scalar?.maxForwards == nil)
        #expect(scalar?.canFormReply == false)
        // quotbal: unbalanced quotes in a display name
        let quotbal = parse("INVITE sip:a@b SIP/2.0\nTo: \"Mr. J. User <sip:j.user@example.com>\nFrom: sip:c@d;tag=1\nCall-ID: q\nCSeq: 1 INVITE\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\n")
        #expect(quotbal?.to == nil)
        #expect(quotbal?.canFormReply == false)
        // ltgtruri: R-URI in <>
        let ltgt = parse("INVITE <sip:user@example.com> SIP/2.0\nCall-ID: l\n\n")
        #expect(ltgt?.requestURI == "<sip:user@example.com>")
        #expect(ltgt?.parsedRequestURI == nil)
        // lwsruri: whitespace inside the R-URI
        #expect(parseError(crlf("INVITE sip:user@example.com; lr SIP/2.0\n\n"))?.code == .invalidStartLine)
        // lwsstart: extra spaces between the parts are tolerated (as Kamailio does)
        #expect(parse("INVITE  sip:user@example.com   SIP/2.0  \n\n")?.requestURI == "sip:user@example.com")
        // insuf: missing Call-ID / From / To: parses, but cannot be answered
        let insuf = parse("INVITE sip:user@example.com SIP/2.0\nCSeq: 193942 INVITE\nVia: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\nContent-Length: 0\n\n")
        #expect(insuf != nil)
        #expect(insuf?.canFormReply == false)
        // badaspec: addr-spec with angle brackets but a space inside
        #expect(parse(base + "Contact: <sip:user@example.com ;lr>\n\n")?.nameAddrs(.contact).isEmpty == true)
        // NUL in a header name / in the start line
        #expect(parseError(crlf(base + "Sub\u{0}ject: x\n\n"))?.code == .invalidHeaderLine)
        #expect(parseError(crlf("INV\u{0}ITE sip:a@b SIP/2.0\n\n"))?.code == .invalidStartLine)
        // the message ends in the middle of the headers
        #expect(parseError(crlf(base))?.code == .missingEndOfHeaders)
        #expect(parseError(crlf(base).dropLast(2).map { $0 })?.code == .missingEndOfHeaders)
        // a message made of one very long value
        let huge = "OPTIONS sip:a@b SIP/2.0\nX: " + String(repeating: ",<\"", count: 2500) + "\n\n"
        #expect(parse(huge)?.headers(named: "X").count == 1)
    }
}
