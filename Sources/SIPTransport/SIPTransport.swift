// SIPTransport
