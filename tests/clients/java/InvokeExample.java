import dev.cacheextension.client.Json;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.HashMap;
import java.util.Map;

/**
 * Invokes a Lambda handler class the way the Java runtime would for a handler without a Context parameter:
 * loads the class named by args[0] (for example {@code example.Handler}), instantiates it, calls
 * {@code handleRequest(Map<String, Object>)} with an empty event and prints the result as JSON on stdout.
 * On failure, prints the exception's class and message on stderr and exits 1.
 *
 * <pre>java -cp cache-extension-client.jar:classes InvokeExample example.Handler</pre>
 */
public class InvokeExample {

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: InvokeExample HANDLER_CLASS");
            System.exit(2);
        }
        try {
            Class<?> type = Class.forName(args[0]);
            Object handler = type.getDeclaredConstructor().newInstance();
            Method method = type.getMethod("handleRequest", Map.class);
            Map<String, Object> event = new HashMap<>();
            Object result = method.invoke(handler, event);
            System.out.println(Json.write(result));
        } catch (Throwable e) {
            Throwable cause = e;
            while ((cause instanceof InvocationTargetException || cause instanceof ExceptionInInitializerError)
                    && cause.getCause() != null) {
                cause = cause.getCause();
            }
            System.err.println(cause.getClass().getName() + ": " + cause.getMessage());
            System.exit(1);
        }
    }
}
