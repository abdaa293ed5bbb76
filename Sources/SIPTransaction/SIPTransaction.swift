// SIPTransaction
