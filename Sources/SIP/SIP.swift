// SIP
