package dev.cacheextension.client;

import static dev.cacheextension.client.Checks.TOKEN;
import static dev.cacheextension.client.Checks.contains;
import static dev.cacheextension.client.Checks.notContains;
import static dev.cacheextension.client.FakeExtension.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The port and token a client takes from its environment, chosen as the extension chooses its own
 * (extension/cache_extension/settings.py), with AWS's extension's and the Secrets Manager Agent's variables after
 * ours: a function switched over from either keeps its environment.
 */
@Timeout(30)
class EnvironmentDefaultsTest {

    private static final String TOKEN_HEADER = "x-aws-parameters-secrets-token";
    private static final String AWS_PORT = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT";

    /** A builder reading only these variables: name, value, name, value, ... (a null value: unset). */
    private static CacheClient.Builder with(String... namesAndValues) {
        Map<String, String> env = new HashMap<>();
        for (int i = 0; i < namesAndValues.length; i += 2) {
            if (namesAndValues[i + 1] != null) {
                env.put(namesAndValues[i], namesAndValues[i + 1]);
            }
        }
        return CacheClient.builder().environment(env);
    }

    /** The token header of the request a client built from this environment (and port) sent. */
    private static String sentToken(FakeExtension fx, CacheClient.Builder builder) {
        builder.port(fx.port()).build().getParameter("p");
        List<String> header = fx.last().header(TOKEN_HEADER);
        return header == null ? null : String.join(",", header);
    }

    @Test
    @DisplayName("env: the variables are the extension's, in its order")
    void variables() {
        assertEquals(List.of("CACHE_EXTENSION_TOKEN", "AWS_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN"),
                CacheClient.TOKEN_VARIABLES);
        assertEquals(List.of("CACHE_EXTENSION_PORT", AWS_PORT), CacheClient.PORT_VARIABLES);
    }

    @Test
    @DisplayName("env: token CACHE_EXTENSION_TOKEN before AWS_TOKEN before AWS_SESSION_TOKEN; empty is unset; the option wins")
    void agentTokenInTheChain() throws Exception {
        try (FakeExtension fx = new FakeExtension(ok("v"))) {
            assertEquals("agent", sentToken(fx, with("AWS_TOKEN", "agent", "AWS_SESSION_TOKEN", "session",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "container")));
            assertEquals("ours", sentToken(fx, with("CACHE_EXTENSION_TOKEN", "ours", "AWS_TOKEN", "agent",
                    "AWS_SESSION_TOKEN", "session")));
            assertEquals("agent", sentToken(fx, with("CACHE_EXTENSION_TOKEN", "", "AWS_TOKEN", "agent",
                    "AWS_SESSION_TOKEN", "session")));
            assertEquals("session", sentToken(fx, with("CACHE_EXTENSION_TOKEN", "", "AWS_TOKEN", "",
                    "AWS_SESSION_TOKEN", "session")));
            assertEquals("container", sentToken(fx, with("AWS_TOKEN", "", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "container")));
            assertEquals("explicit", sentToken(fx, with("CACHE_EXTENSION_TOKEN", "ours", "AWS_TOKEN", "agent")
                    .token("explicit")));
            notContains(with("AWS_TOKEN", "agent-secret").build().toString(), "agent-secret");
        }
    }

    @Test
    @DisplayName("env: port CACHE_EXTENSION_PORT before PARAMETERS_SECRETS_EXTENSION_HTTP_PORT before 4000; the option wins")
    void awsExtensionPort() throws Exception {
        contains(with(AWS_PORT, "2773", "AWS_SESSION_TOKEN", TOKEN).build().toString(), "127.0.0.1:2773");
        contains(with("CACHE_EXTENSION_PORT", "4100", AWS_PORT, "2773").build().toString(), "127.0.0.1:4100");
        contains(with("CACHE_EXTENSION_PORT", "", AWS_PORT, "2773").build().toString(), "127.0.0.1:2773");
        contains(with("CACHE_EXTENSION_PORT", " ", AWS_PORT, "2773").build().toString(), "127.0.0.1:2773");
        contains(with("CACHE_EXTENSION_PORT", "", AWS_PORT, "").build().toString(), "127.0.0.1:4000");
        contains(with("CACHE_EXTENSION_PORT", "4100", AWS_PORT, "2773").port(4200).build().toString(), "127.0.0.1:4200");
        // A bad value is refused, naming its variable, even when the other one would do: as the extension does.
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> with(AWS_PORT, "http").build());
        contains(e.getMessage(), AWS_PORT);
        e = assertThrows(IllegalArgumentException.class, () -> with(AWS_PORT, "70000").build());
        contains(e.getMessage(), AWS_PORT);
        e = assertThrows(IllegalArgumentException.class, () -> with("CACHE_EXTENSION_PORT", "x", AWS_PORT, "2773").build());
        contains(e.getMessage(), "CACHE_EXTENSION_PORT");
        // An explicit port makes the environment's port irrelevant, bad or not.
        contains(with(AWS_PORT, "http").port(4300).build().toString(), "127.0.0.1:4300");
        // And a real request goes to the port AWS's variable names.
        try (FakeExtension fx = new FakeExtension(ok("v"))) {
            with(AWS_PORT, String.valueOf(fx.port()), "AWS_TOKEN", TOKEN).build().getParameter("p");
            assertEquals(Collections.singletonList(TOKEN), fx.last().header(TOKEN_HEADER));
        }
    }
}
