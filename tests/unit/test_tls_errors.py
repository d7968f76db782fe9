"""Transport errors: a TLS handshake cut short by a peer that is down is not a certificate problem."""


def test_a_handshake_cut_short_is_a_retryable_connection_error_not_a_certificate_problem():
    import ssl

    import requests

    from reconciler.resilience import from_requests_error, is_certificate_error

    eof = requests.exceptions.SSLError(ssl.SSLEOFError(8, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred"))
    cert = requests.exceptions.SSLError(
        ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    wrapped = requests.exceptions.SSLError("HTTPSConnectionPool(...): Max retries exceeded (Caused by "
                                           "SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED]')))")
    assert not is_certificate_error(eof)
    assert is_certificate_error(cert) and is_certificate_error(wrapped)
    down = from_requests_error(eof, "bosh", "GET /info")
    assert "TLS handshake" in str(down) and not getattr(down, "tls", False)  # retried like any connection error
    bad = from_requests_error(cert, "bosh", "GET /info")
    assert "TLS verification failed" in str(bad) and bad.tls  # fails closed
